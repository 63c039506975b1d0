"""One error type for everything a user can get wrong, the two ways a run ends early (a signal, a
lost worker), the signal handling, and `user_errors`, which turns each into one line and an exit status.

The CLI prints `FewShotError` as a single line (no traceback) and exits with status 2, so every
message must name the problem *and* the fix.
"""
import contextlib
import signal
import sys
import warnings


class FewShotError(Exception):
    """Bad input: a file, folder, argument or data row the user supplied."""


def permission_denied(path, what="file"):
    """The one message for a file or folder that exists but cannot be read."""
    return FewShotError(f"{path}: permission denied; make the {what} readable (chmod u+r) or copy it to a place you "
                        f"can read")


class WorkerLost(Exception):
    """A multi-worker run lost a worker (killed, host down): the collectives abort on every other
    worker. The CLI prints `message` and exits with status 1."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; `message` says what was saved. The CLI prints it and exits with status
    128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM), as a shell does."""

    def __init__(self, signum, message=""):
        if not isinstance(signum, int):
            # re-raised by TensorFlow's tracing (inside `fit`) with only its text: find the signal in it
            text, message = str(signum), ""
            signum = signal.SIGTERM if "SIGTERM" in text else signal.SIGINT
        super().__init__(message or signal.Signals(signum).name)
        self.signum, self.message = int(signum), message


@contextlib.contextmanager
def _handling(handler):
    """SIGINT and SIGTERM go to `handler` inside; the previous handlers come back after."""
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def signals_ignored():
    """SIGINT and SIGTERM ignored while a run saves what it has."""
    return _handling(signal.SIG_IGN)


@contextlib.contextmanager
def signals_deferred():
    """SIGINT and SIGTERM recorded, not raised, inside (code in TensorFlow's C++ that an exception raised
    mid-call would corrupt, e.g. writing a SavedModel); raised as Interrupted once the block is done."""
    received = []
    with _handling(lambda signum, frame: received.append(signum)):
        yield
    if received:
        raise Interrupted(received[0])


@contextlib.contextmanager
def interruptible():
    """Turn SIGINT (Ctrl-C) and SIGTERM (kill, a scheduler's time limit) into `Interrupted`, raised
    at the next Python step, so the run can save what it has; the old handlers come back after."""
    received = []

    def handler(signum, frame):
        received.append(signum)
        raise Interrupted(signum)
    try:
        with _handling(handler):
            yield
    except Interrupted as stop:
        raise Interrupted(received[0] if received else stop.signum, stop.message) from None
    except KeyboardInterrupt:  # a Ctrl-C that arrived before our handler was in place
        raise Interrupted(signal.SIGINT) from None
    except Exception:
        if received:  # a framework turned our Interrupted into an error of its own while unwinding
            raise Interrupted(received[0]) from None
        raise


@contextlib.contextmanager
def user_errors():
    """Bad input ends the program with one line on stderr and exit status 2, not a traceback; an
    interrupt with one line and status 130; a multi-worker run that lost a worker with one line and
    status 1 (restart with --resume). Warnings print as one `warning: ...` line. SIGINT and SIGTERM
    raise `Interrupted` anywhere inside (model loading and zero-shot scoring too)."""
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        with interruptible():
            yield
    except FewShotError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except WorkerLost as e:
        print(f"error: {e.message}", file=sys.stderr)
        sys.exit(1)
    except (Interrupted, KeyboardInterrupt) as e:
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        print(e.message if isinstance(e, Interrupted) and e.message else
              f"interrupted ({signal.Signals(signum).name}) before anything was written", file=sys.stderr)
        sys.exit(128 + signum)
