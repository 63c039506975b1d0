"""One error type for everything a user can get wrong, the two ways a run ends early, and
`user_errors`, which turns each into one line and an exit status.

The CLI prints `FewShotError` as a single line (no traceback) and exits with status 2, so every
message must name the problem *and* the fix.
"""
import contextlib
import signal
import sys
import warnings


class FewShotError(Exception):
    """Bad input: a file, folder, argument or data row the user supplied."""


class WorkerLost(Exception):
    """A multi-worker run lost a worker (killed, host down): the collectives abort on every other
    worker. The CLI prints `message` and exits with status 1."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during a run; `message` says what was saved (the CLI prints it and
    exits with status 130, as a shell does for Ctrl-C)."""

    def __init__(self, signum, message=""):
        super().__init__(message or signal.Signals(signum).name)
        self.signum, self.message = signum, message


@contextlib.contextmanager
def user_errors():
    """Bad input ends the program with one line on stderr and exit status 2, not a traceback; an
    interrupt with one line and status 130; a multi-worker run that lost a worker with one line and
    status 1 (restart with --resume). Warnings print as one `warning: ...` line."""
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        yield
    except FewShotError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except WorkerLost as e:
        print(f"error: {e.message}", file=sys.stderr)
        sys.exit(1)
    except (Interrupted, KeyboardInterrupt) as e:
        print(e.message if isinstance(e, Interrupted) and e.message else
              "interrupted before training started; nothing was written", file=sys.stderr)
        sys.exit(130)
