"""A Study A dataset of the user's own images, and a synthetic pool of the user's own generator.

Two layouts (config/README.md: Your own data): ``folder`` (``root/<class>/**``, the class folder names
are ``data.classes``) and ``csv`` (columns ``path``, ``label``, optional ``subject`` and ``split``;
relative paths are read from ``root``, else from the CSV's folder). Listing and checking happen
while Snakemake builds the DAG, so a missing class folder, an unknown label or a duplicate path
stops the run before any job; decoding happens in the data job (``data.jobs``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.config import config_hash
from ..core.errors import PipelineError
from ..core.imageset import SOURCES, SPLITS, ImageSet
from .folders import describe
from .images import is_image_file

REAL_SPLITS = ("train", "val", "test")
# A synthetic pool has no val split: assembly holds its validation images out of the training pool.
POOL_SPLITS = ("train", "test")
CSV_COLUMNS = ("path", "label")
SHOWN = 5  # rows named in a message before "... and N more"


class OwnDataError(PipelineError, ValueError):
    """A user dataset or pool is not what its config section says; the message names the file and fix."""


def _rows(numbers) -> str:
    numbers = list(numbers)
    more = f" and {len(numbers) - SHOWN} more" if len(numbers) > SHOWN else ""
    return ", ".join(map(str, numbers[:SHOWN])) + more


def _subject(relative: str, pattern: re.Pattern | None, path: Path, key: str) -> str | None:
    if pattern is None:
        return None
    match = pattern.search(relative)
    if match is None:
        raise OwnDataError(f"{path}: {key}.subject_regex {pattern.pattern!r} does not match {relative!r}; "
                           f"fix the regex (its first group, or the whole match, is the subject id) or set it null")
    return match.group(1) if pattern.groups else match.group(0)


def _folder(spec: dict, classes: list[str], key: str) -> pd.DataFrame:
    root = Path(spec["root"]).expanduser()
    if not root.is_dir():
        raise OwnDataError(f"{root}: not found or not a folder; set {key}.root to the folder holding one "
                           f"sub-folder per class {classes}")
    pattern = re.compile(spec["subject_regex"]) if spec.get("subject_regex") else None
    rows = []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise OwnDataError(f"{folder}: class folder missing ({root} holds {describe(root)}); rename the "
                               f"folder or set {key.rsplit('.', 1)[0]}.data.classes to the folder names")
        files = sorted(p for p in folder.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        images = [p for p in files if is_image_file(p)]
        if not images:
            raise OwnDataError(f"{folder}: no images (PNG, JPEG, TIFF, NIfTI or DICOM) in this class folder "
                               f"({describe(folder)}); add the class's images or fix {key}.root")
        for p in images:
            rel = p.relative_to(folder).as_posix()
            rows.append({"path": str(p.resolve()), "label": label, "subject": _subject(rel, pattern, p, key),
                         "split_hint": None})
    return pd.DataFrame(rows)


def _csv(spec: dict, classes: list[str], key: str, splits: tuple[str, ...]) -> pd.DataFrame:
    table = Path(spec["csv"]).expanduser()
    if not table.is_file():
        raise OwnDataError(f"{table}: not found; set {key}.csv to a table with columns path,label "
                           f"(optional subject, split)")
    try:
        df = pd.read_csv(table, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise OwnDataError(f"{table}: not a readable CSV ({e}); save it as comma-separated UTF-8") from e
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise OwnDataError(f"{table}: no column(s) {missing} (columns: {list(df.columns)}); the table needs "
                           f"path and label, optionally subject and split")
    line = df.index.to_numpy() + 2  # the header is line 1
    for column in ("path", "label", *(c for c in ("subject", "split") if c in df.columns)):
        blank = line[df[column].str.strip() == ""]
        if len(blank):
            raise OwnDataError(f"{table}: empty {column} on line(s) {_rows(blank)}; fill them in"
                               + (" or drop the column" if column in ("subject", "split") else ""))
    unknown = ~df["label"].isin(classes)
    if unknown.any():
        raise OwnDataError(f"{table}: label {df['label'][unknown].iloc[0]!r} on line(s) {_rows(line[unknown])} "
                           f"is not one of the classes {classes}; fix the rows or "
                           f"{key.rsplit('.', 1)[0]}.data.classes")
    if "split" in df.columns:
        bad = ~df["split"].isin(splits)
        if bad.any():
            raise OwnDataError(f"{table}: split {df['split'][bad].iloc[0]!r} on line(s) {_rows(line[bad])} is "
                               f"not one of {list(splits)}"
                               + ("; a synthetic pool's validation images are held out of its train rows "
                                  "(assembly.val_fraction)" if splits == POOL_SPLITS else ""))
    base = Path(spec["root"]).expanduser() if spec.get("root") else table.parent
    paths = [(base / p).resolve() for p in df["path"]]
    seen: dict[Path, int] = {}
    for n, p in zip(line, paths):
        if p in seen:
            raise OwnDataError(f"{table}: {p} is listed on lines {seen[p]} and {n}; list every image once")
        seen[p] = n
    absent = [n for n, p in zip(line, paths) if not p.is_file()]
    if absent:
        first = paths[int(np.flatnonzero(line == absent[0])[0])]
        raise OwnDataError(f"{table}: {len(absent)} listed image(s) not found, first {first} (line(s) "
                           f"{_rows(absent)}); paths are read relative to {base} ({key}.root, else the CSV's folder)")
    return pd.DataFrame({"path": [str(p) for p in paths], "label": [classes.index(v) for v in df["label"]],
                         "subject": df["subject"].to_numpy(str) if "subject" in df.columns else None,
                         "split_hint": df["split"].to_numpy(str) if "split" in df.columns else None})


def list_images(spec: dict, classes: list[str], key: str, pool: bool = False) -> pd.DataFrame:
    """Rows ``path`` (absolute), ``label`` (index into ``classes``), ``subject``, ``split_hint``.

    ``spec`` is ``<dataset>.data`` (``format``) or ``<dataset>.synthetic`` (``source``); ``key`` names
    it in messages. Raises OwnDataError naming the file and the fix.
    """
    layout = spec.get("format") or spec["source"]
    splits = POOL_SPLITS if pool else REAL_SPLITS
    frame = _folder(spec, classes, key) if layout == "folder" else _csv(spec, classes, key, splits)
    where = spec["root"] if layout == "folder" else spec["csv"]
    for label, name in enumerate(classes):
        if not (frame["label"] == label).any():
            raise OwnDataError(f"{where}: no images of class {name!r}; every class of {classes} needs images")
    return frame


def listing_digest(frame: pd.DataFrame) -> str:
    """Names every listed file with its size and modification time: a changed image set re-runs the job."""
    stats = [Path(p).stat() for p in frame["path"]]
    return config_hash({"rows": frame[["path", "label", "subject", "split_hint"]].astype(str).values.tolist(),
                        "files": [[s.st_size, s.st_mtime_ns] for s in stats]})


def assign_split(frame: pd.DataFrame, classes: list[str], val_fraction: float, test_fraction: float, seed: int,
                 where: str) -> np.ndarray:
    """Split codes: the ``split`` column when given, else a seeded split of subjects (patient-disjoint),
    or of images when no subject is known. Every class needs training and test images."""
    from .cxr import assign_splits

    by_subject = frame["subject"].notna().all()
    try:
        split = assign_splits(frame.assign(subject=frame["subject"] if by_subject else frame["path"]),
                              val_fraction, test_fraction, seed)
    except PipelineError as e:
        raise OwnDataError(f"{where}: {e}") from e
    label = frame["label"].to_numpy()
    for c, name in enumerate(classes):
        for part in ("train", "test"):
            if not ((split == SPLITS[part]) & (label == c)).any():
                raise OwnDataError(f"{where}: class {name!r} has no {part} images after the split "
                                   f"({int((label == c).sum())} images in all); add images, give a split "
                                   f"column, or change test_fraction")
    return split


def _train_counts(s: ImageSet) -> str:
    return "/".join(str(int(((s.split == SPLITS["train"]) & (s.label == c)).sum())) for c in (0, 1))


def check_pool_sizes(real: ImageSet, pool: ImageSet, assembly: dict, key: str) -> None:
    """Fail now, with the numbers, when the pools cannot give every alpha its counts."""
    from ..assembly.alpha import pool_sizes

    available, v = pool_sizes(real, pool, assembly["val_fraction"])
    n = assembly["per_class"] or max(available, 1)
    if n <= available:
        return
    raise OwnDataError(f"{key}: every alpha takes {n} training images per class from each pool, plus {v} "
                       f"validation images per class held out of them (assembly.per_class="
                       f"{assembly['per_class']}, assembly.val_fraction={assembly['val_fraction']}), but the "
                       f"training images per class {real.class_names} are real {_train_counts(real)} and synthetic "
                       f"{_train_counts(pool)}; add synthetic images or lower assembly.per_class")


def imageset_rows(frame: pd.DataFrame, split: np.ndarray, dataset: str, classes: list[str], source: str,
                  provenance: dict) -> ImageSet:
    """The image set's rows without images (``data.jobs`` streams the images in)."""
    subject = frame["subject"].to_numpy(str) if frame["subject"].notna().all() else None
    return ImageSet(images=None, label=frame["label"].to_numpy(np.int64),
                    source=np.full(len(frame), SOURCES[source], np.uint8), split=split, dataset=dataset,
                    class_names=list(classes), subject=subject, key=frame["path"].to_numpy(str),
                    provenance=provenance)
