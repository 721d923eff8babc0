"""Entry points of the figure rules (workflow/rules/figures.smk): every figure is a file target."""

from __future__ import annotations

import pandas as pd

from ..core.imageset import read_header, read_imageset
from ..evaluation.cells import CELL_SEP, ci_method, read_table

# Study A


def _c2st_titles(detectability: pd.DataFrame) -> dict:
    """Row titles of the alpha figure: each variant with its pool's pooled C2ST AUROC and interval."""
    c2st = detectability[(detectability["metric"] == "c2st_auroc") & (detectability["group"] == "pooled")]
    return {(r.dataset, r.variant): f"{r.variant} · C2ST AUROC {r.value:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"
            for r in c2st.itertuples()}


def _erm(table: pd.DataFrame) -> pd.DataFrame:
    """Study A's own figures show plain training; the mitigation figure shows the other arms."""
    return table[table["method"] == "erm"]


def figure_alpha(table_path: str, detectability_path: str, real_path: str, out_path: str, ci: float) -> None:
    from .alpha import plot_alpha

    dataset, class_names = read_header(real_path)
    title = f"{dataset}: {class_names[0]} vs {class_names[1]}, one row per generator variant"
    plot_alpha(_erm(read_table(table_path)), out_path, title, ci_method(ci), class_names=class_names,
               row_titles=_c2st_titles(read_table(detectability_path)))


def figure_fidelity(summary_path: str, real_path: str, out_path: str) -> None:
    from .detectability import plot_fidelity

    dataset, class_names = read_header(real_path)
    plot_fidelity(read_table(summary_path), out_path, f"{dataset}: {class_names[0]} vs {class_names[1]}")


def figure_fingerprints(fingerprint_paths: dict[str, str], real_path: str, out_path: str) -> None:
    """``fingerprint_paths``: variant -> its fingerprints.npz."""
    import numpy as np

    from .detectability import plot_fingerprints

    dataset, class_names = read_header(real_path)
    arrays = {}
    for variant, path in fingerprint_paths.items():
        with np.load(path, allow_pickle=False) as npz:
            arrays[variant] = dict(npz)
    plot_fingerprints(arrays, class_names, out_path, f"{dataset}: what sets the synthetic pools apart")


def figure_architectures(table_paths: list[str], real_paths: list[str], out_path: str, ci: float) -> None:
    """Study A's claim that the bias persists across datasets and architectures, as one picture.

    Cells are renamed "class 1"/"class 2" so one legend serves datasets with different class names.
    """
    from .alpha import plot_alpha

    tables = []
    for table_path, real_path in zip(table_paths, real_paths):
        _, names = read_header(real_path)
        generic = {name: f"class {k + 1}" for k, name in enumerate(names)}
        t = _erm(read_table(table_path))
        cells = t["cell"].fillna("").str.split(CELL_SEP, n=1, regex=False)
        t["cell"] = [f"{generic[c[0]]}{CELL_SEP}{c[1]}" if len(c) == 2 else "" for c in cells]
        t["dataset"] = t["dataset"] + " (" + " vs ".join(names) + ")"
        tables.append(t)
    plot_alpha(pd.concat(tables, ignore_index=True), out_path, "Study A across datasets and architectures",
               ci_method(ci), class_names=["class 1", "class 2"])


def figure_mitigation(table_path: str, detectability_path: str, real_path: str, out_path: str, ci: float,
                      methods: list[str], variants: list[str]) -> None:
    """Every arm against ERM; columns in the config's variant order, titled with the variant's C2ST
    AUROC as in the alpha figure."""
    from .mitigation import plot_mitigation

    dataset, class_names = read_header(real_path)
    table = read_table(table_path)
    c2st = _c2st_titles(read_table(detectability_path))
    archs = list(dict.fromkeys(table["architecture"]))
    titles = {(v, a): f"{c2st.get((dataset, v), v)}\n{a}" for v in variants for a in archs}
    plot_mitigation(table, out_path, f"{dataset}: {class_names[0]} vs {class_names[1]}, mitigation arms",
                    ci_method(ci), methods, panel_titles=titles)


def figure_samples(real_path: str, synthetic_paths: dict[str, str], out_path: str, seed: int) -> None:
    """``synthetic_paths``: variant -> its synthetic pool."""
    from .samples import plot_samples

    plot_samples(read_imageset(real_path), {v: read_imageset(p) for v, p in synthetic_paths.items()}, out_path,
                 seed=seed)


# Study B


def figure_supplementation(table_path: str, out_path: str, heatmap_path: str, title: str) -> None:
    from .supplementation import plot_label_heatmap, plot_supplementation

    table = pd.read_csv(table_path)
    plot_supplementation(table, out_path, title)
    plot_label_heatmap(table, heatmap_path, title)
