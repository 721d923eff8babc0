"""Stage detectability: how distinguishable a synthetic pool is from the real images, and what gives it away."""
