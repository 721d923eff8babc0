"""Entry points of the figure rules (workflow/rules/figures.smk): every figure is a file target."""

from __future__ import annotations

import pandas as pd

from ..core.imageset import read_header, read_imageset
from ..evaluation.cells import CELL_SEP, ci_method

# Study A


def figure_alpha(table_path: str, real_path: str, out_path: str, ci: float) -> None:
    from .alpha import plot_alpha

    dataset, class_names = read_header(real_path)
    title = f"{dataset}: {class_names[0]} vs {class_names[1]}"
    plot_alpha(pd.read_csv(table_path), out_path, title, ci_method(ci), class_names=class_names)


def figure_architectures(table_paths: list[str], real_paths: list[str], out_path: str, ci: float) -> None:
    """Study A's claim that the bias persists across datasets and architectures, as one picture.

    Cells are renamed "class 1"/"class 2" so one legend serves datasets with different class names.
    """
    from .alpha import plot_alpha

    tables = []
    for table_path, real_path in zip(table_paths, real_paths):
        _, names = read_header(real_path)
        generic = {name: f"class {k + 1}" for k, name in enumerate(names)}
        t = pd.read_csv(table_path)
        cells = t["cell"].fillna("").str.split(CELL_SEP, n=1, regex=False)
        t["cell"] = [f"{generic[c[0]]}{CELL_SEP}{c[1]}" if len(c) == 2 else "" for c in cells]
        t["dataset"] = t["dataset"] + " (" + " vs ".join(names) + ")"
        tables.append(t)
    plot_alpha(pd.concat(tables, ignore_index=True), out_path, "Study A across datasets and architectures",
               ci_method(ci), class_names=["class 1", "class 2"])


def figure_samples(real_path: str, synthetic_path: str, out_path: str, seed: int) -> None:
    from .samples import plot_samples

    plot_samples(read_imageset(real_path), read_imageset(synthetic_path), out_path, seed=seed)


# Study B


def figure_supplementation(table_path: str, out_path: str, heatmap_path: str, title: str) -> None:
    from .supplementation import plot_label_heatmap, plot_supplementation

    table = pd.read_csv(table_path)
    plot_supplementation(table, out_path, title)
    plot_label_heatmap(table, heatmap_path, title)
