"""Synthetic Simplicity: protocols for auditing classifiers trained on real + synthetic images.

Importing the package is cheap (no torch); each stage lives in its own module.
"""

__version__ = "0.1.0"
