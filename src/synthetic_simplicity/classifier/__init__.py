"""Stage classifier: architectures, training and prediction."""
