"""Every figure of the pipeline; one module per figure family, ``jobs`` holds the rules' entry points."""

import matplotlib

matplotlib.use("Agg")  # headless cluster nodes have no display; set before any module imports pyplot
