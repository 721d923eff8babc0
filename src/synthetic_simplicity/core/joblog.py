"""Logging for pipeline jobs: everything a script prints to stderr lands in the rule's log file, and a
failure ends with one clear message on the screen and as the log's last line.

An expected failure (``PipelineError``: bad input or config, named with the fix) prints its message
alone, without a traceback; anything else is a bug and prints its traceback to both.
"""

from __future__ import annotations

import gc
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import PipelineError


@contextmanager
def job_log(path: str) -> Iterator[None]:
    """Run a job's body with stderr (tracebacks, tqdm bars, warnings) and logging sent to ``path``."""
    screen = sys.stderr
    log_file = open(path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job
    sys.stderr = log_file
    logging.basicConfig(stream=log_file, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        yield
    except PipelineError as e:
        for out in (log_file, screen):
            print(str(e), file=out, flush=True)
        raise SystemExit(1) from None
    except Exception:
        for out in (log_file, screen):
            traceback.print_exc(file=out)
        raise SystemExit(1) from None
    finally:
        sys.stderr = screen
        log_file.close()
        # The job ends here, and with it the process: spare the interpreter's exit its final garbage
        # collection over every object the imports made (torch alone: about a second per job,
        # benchmarks/classifier_job_cost.py). Outputs and logs are closed explicitly before this.
        gc.freeze()


def stop_workflow(error: PipelineError) -> None:
    """End Snakemake while it reads the config or builds the DAG, with the message alone (no traceback)."""
    print(f"{type(error).__name__}: {error}", file=sys.stderr, flush=True)
    raise SystemExit(1)
