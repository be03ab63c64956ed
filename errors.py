"""The one user-facing error type.

Raise :class:`DepthshrinkError` for anything the *user* can fix (a bad name, a file for another
model, an illegal merge). The CLI turns it into one line on stderr and a non-zero exit; every
other exception is a bug and keeps its traceback.
"""


class DepthshrinkError(Exception):
    """A problem with the user's input, described in one line that says how to fix it."""

    exit_code = 1


class OutOfReach(DepthshrinkError):
    """No network meets the latency budget (the CLI exits with status 3, so scripts can tell)."""

    exit_code = 3
