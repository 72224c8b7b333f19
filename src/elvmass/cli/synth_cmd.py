"""`elvmass synth`: write the built-in synthetic cohort (see :mod:`elvmass.synth`).

    elvmass synth --n 1459 --seed 0 --out synth_out [--profile internal|external] [--format muse|wfdb] [--report]
"""

from __future__ import annotations

from pathlib import Path

import typer

from elvmass.cli._app import app, console, err_console, print_json_line, report_error
from elvmass.errors import ElvmassError


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write ecgs/, imaging.csv and truth.csv into."),
    n: int = typer.Option(1459, "--n", help="Patients left after the paper's exclusions (excluded ones are written too)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the same seed gives byte-identical files)."),
    profile: str = typer.Option("internal", "--profile", help="internal (Taiwanese-like, CT LVM) or external (western, echo LVM)."),
    fmt: str = typer.Option("muse", "--format", help="ECG file format: muse (GE MUSE XML) or wfdb."),
    report: bool = typer.Option(False, "--report", help="Measure the written cohort and print the calibration report."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON line instead of text."),
    workers: int = typer.Option(0, "--workers", help="Processes simulating patients (0 = the usable cores); "
                                "the files are the same for any number."),
) -> None:
    """Generate paired 12-lead ECGs and CT-derived LV mass for N synthetic patients."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from elvmass.process_pool import default_workers
    from elvmass.synth import SynthConfig, generate_cohort

    try:
        cfg = SynthConfig(n=n, seed=seed, profile=profile)
        if fmt not in ("muse", "wfdb"):
            raise ElvmassError(f"--format {fmt!r}: use muse or wfdb")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        from elvmass.atomic import atomic_dir

        with Progress(*columns, console=err_console, transient=True, disable=json_out) as bar:
            task = bar.add_task("simulating patients", total=n)
            # written into a hidden sibling and swapped in whole; other files in --out are carried over
            with atomic_dir(out, keep_others=True) as tmp:
                result = generate_cohort(cfg, tmp, fmt=fmt, progress=lambda i, total: bar.update(task, completed=i),
                                         workers=workers if workers > 0 else default_workers())
        summary = {
            "out": str(out),
            "n_patients": result.n_patients,
            "n_ecgs": len(result.ecg_paths),
            "imaging_csv": str(out / result.imaging_csv.relative_to(tmp)),
            "truth_csv": str(out / result.truth_csv.relative_to(tmp)),
            "profile": profile,
            "format": fmt,
        }
        rep = None
        if report:
            from elvmass.synth.report import format_report, synth_report

            with Progress(*columns, console=err_console, transient=True, disable=json_out) as bar:
                task = bar.add_task("measuring ECGs", total=None)
                rep = synth_report(out, progress=lambda i, total: bar.update(task, completed=i, total=total))
    except ElvmassError as exc:
        report_error(str(exc))
        raise typer.Exit(1)
    if json_out:
        print_json_line({**summary, "report": rep})
        return
    console.print(
        f"wrote {summary['n_ecgs']} ECGs of {summary['n_patients']} patients to {out}/ecgs, "
        f"imaging.csv and truth.csv", highlight=False
    )
    console.print(f"next: elvmass cohort build --ecg-dir {out}/ecgs --imaging {out}/imaging.csv --out {out}/manifest.csv", highlight=False, markup=False)
    if rep is not None:
        console.print(format_report(rep), highlight=False, markup=False)
