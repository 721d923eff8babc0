"""Logging for pipeline jobs: everything a script prints to stderr lands in the rule's log file."""

from __future__ import annotations

import logging
import sys


def start_log(path: str) -> None:
    """Send stderr (tracebacks, tqdm bars, warnings) and the logging module to ``path``."""
    sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
