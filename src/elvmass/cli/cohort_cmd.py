"""`elvmass cohort`: see the module docstring of the library function it wraps."""

from elvmass.cli._app import app  # noqa: F401
