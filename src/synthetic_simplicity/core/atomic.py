"""One way to write an output: under a temporary name, renamed into place only when complete (and JSON
records written that way)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that infer the format from it
    still work). It replaces ``path`` when the block succeeds and is removed when it fails, so a
    killed or failing job never leaves half a file under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _json_default(o):
    if isinstance(o, np.generic):  # numpy scalars from upstream code
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_csv(path: str | os.PathLike, frame) -> None:
    """A table (pandas DataFrame) as CSV without its index, written to a temp file and renamed."""
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_json(path: str | os.PathLike, record: dict) -> None:
    """Sorted-key, indented JSON, written to a temp file and renamed so readers never see half a file."""
    # allow_nan=False: NaN/Infinity are not JSON; empty cells must be None upstream.
    text = json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False,
                      default=_json_default)
    with atomic_output(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
