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


class UnusableECGError(ECGReadError):
    """An ECG was read but its signal cannot carry a prediction (no beat, too few beats, pacing
    spikes, excessive noise, a flat or saturated lead); ``flags`` are the blocking quality flags."""

    def __init__(self, path, flags):
        self.flags = tuple(flags)
        super().__init__(path, "unusable for prediction (" + (", ".join(self.flags) or "no usable beat") + ")")


class InputValueError(ElvmassError, ValueError):
    """A value given by the caller (an option, a keyword argument, a request field) is implausible,
    in the wrong unit, or contradicts the file; the message names the value, the range and the unit."""
