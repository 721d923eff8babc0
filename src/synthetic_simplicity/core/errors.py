"""The one base of every expected failure: bad input or config, named with the fix.

A job that fails with one of these ends with its message alone (no traceback), on screen and in
its log (``core.joblog``); any other exception is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """An expected failure; the message names the file or config key and what to do."""


class TrainingDivergedError(PipelineError):
    """The loss became NaN or infinite; the message names the key to change."""
