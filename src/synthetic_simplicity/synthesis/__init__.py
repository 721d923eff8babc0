"""Stage synthesis: sampling the synthetic pools, one seed per image."""
