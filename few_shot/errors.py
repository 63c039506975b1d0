"""One error type for everything a user can get wrong.

The CLI prints `FewShotError` as a single line (no traceback) and exits with status 2, so every
message must name the problem *and* the fix.
"""


class FewShotError(Exception):
    """Bad input: a file, folder, argument or data row the user supplied."""
