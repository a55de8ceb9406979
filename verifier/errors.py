"""One exception hierarchy for the whole tool.

Start-up and input problems are raised as ``VerifierError`` subclasses; each
carries the exit code the process ends with (click's ``ClickException.exit_code``
way) and the lines the user sees (``lines()``), and the CLI's command group
reports them in one place (cli.Verifier). Per-packet problems are never
raised: the decoder returns a reason string that the pipeline counts.
"""


class VerifierError(Exception):
    """Base of every error the CLI reports as one clear line (exit 2)."""

    exit_code = 2

    def lines(self):
        """What the user is shown, one line each (on stderr)."""
        return [f"error: {self}"]


class CaptureError(VerifierError):
    """A capture file that cannot be read (bad magic, corrupt header, ...)."""


class DataError(VerifierError):
    """An attribution database or registry that cannot be loaded."""


class ConfigError(VerifierError):
    """Policy or inventory errors, each carrying ``file:line:column``.

    ``problems`` is the full list; the message joins them one per line so a
    user fixes every mistake in one pass.
    """

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def lines(self):
        """Every problem with its position, then how many: fixed in one pass."""
        return [str(p) for p in self.problems] + [f"{len(self.problems)} error(s)"]


class Problem:
    """One positioned configuration problem."""

    __slots__ = ("path", "line", "column", "message")

    def __init__(self, path, line, column, message):
        self.path, self.line, self.column, self.message = path, line, column, message

    def __str__(self):
        return f"{self.path}:{self.line}:{self.column}: {self.message}"

    def __repr__(self):
        return f"Problem({str(self)!r})"
