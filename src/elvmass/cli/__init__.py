"""The `elvmass` command: thin wrappers that parse arguments, call the library and print.

Each sub-command lives in its own module and registers itself on the shared app.
"""

from __future__ import annotations

from elvmass.cli._app import app
from elvmass.cli import inspect_cmd, cohort_cmd, beats_cmd, synth_cmd, study_cmd, serve_cmd, explain_cmd  # noqa: F401  (each registers its commands)


def main() -> None:
    from elvmass.errors import ElvmassError

    try:
        app()
    except ElvmassError as exc:  # any library error reaching the top is printed as one line
        from elvmass.cli._app import report_error

        report_error(str(exc))
        raise SystemExit(1)


__all__ = ["app", "main"]
