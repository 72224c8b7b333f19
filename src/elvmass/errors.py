"""Exceptions that carry a one-line, user-facing message."""


class ElvmassError(Exception):
    """Base class: every elvmass error has a message fit to print as one line."""


class ECGReadError(ElvmassError):
    """An ECG file could not be read; the message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ManifestError(ElvmassError):
    """A cohort manifest is unusable as a whole (missing columns, unreadable file)."""


class OutputError(ElvmassError, OSError):
    """An output could not be written (disk full, no permission); the previous output is left as it was.

    Also an :class:`OSError`, so callers that catch write failures as OSError keep working."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
