"""Stage diffusion: the conditional DDPM (network and training), trained on real training images only."""
