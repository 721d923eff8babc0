"""Mitigation arms: training objectives, data transforms and last-layer retraining that try to stop a
classifier from learning "is it synthetic?" (config key ``classifier.methods``)."""
