"""The `elvmass` command: thin wrappers that parse arguments, call the library and print.

Each sub-command lives in its own module and registers itself on the shared app.
"""

from __future__ import annotations

import os

# OpenMP threads wait by sleeping, not spinning (a loaded 2-core machine otherwise loses most of a
# 2-thread training step to spin-waits; issue 18). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from elvmass.cli._app import app
# each module registers its commands on the shared app
from elvmass.cli import inspect_cmd, cohort_cmd, beats_cmd, synth_cmd, study_cmd  # noqa: F401
from elvmass.cli import serve_cmd  # noqa: F401
from elvmass.cli import experiments_cmd  # noqa: F401
from elvmass.cli import segment_cmd  # noqa: F401
from elvmass.cli import explain_cmd  # noqa: F401
from elvmass.cli import validate_cmd  # noqa: F401


def main() -> None:
    from elvmass.errors import ElvmassError

    try:
        app()
    except ElvmassError as exc:  # any library error reaching the top is printed as one line
        from elvmass.cli._app import report_error

        report_error(str(exc))
        raise SystemExit(1)
    except KeyboardInterrupt:  # Ctrl-C: outputs are atomic (elvmass.atomic), so the previous ones are intact
        from elvmass.cli._app import report_error

        report_error("interrupted; outputs not yet complete were discarded (earlier ones are unchanged)")
        raise SystemExit(130)


__all__ = ["app", "main"]
