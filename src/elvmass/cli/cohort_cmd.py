"""`elvmass cohort`: build a manifest from ECG + imaging exports, and validate a manifest.

    elvmass cohort build --ecg-dir exports/ecg --imaging exports/imaging.csv --out study/manifest.csv
    elvmass cohort validate study/manifest.csv --json

See :mod:`elvmass.cohort` and ``docs/manifest.md`` for the schema and the exclusion rules.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from elvmass.cli._app import app, console, err_console, print_json_line, report_error
from elvmass.errors import ElvmassError, ManifestError, OutputError

cohort_app = typer.Typer(help="Build and check cohort manifests (one ECG–LVM pair per row).", no_args_is_help=True)
app.add_typer(cohort_app, name="cohort")


def _flow_table(flow, title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for col, justify in (("step", "left"), ("unit", "left"), ("in", "right"), ("excluded", "right"),
                         ("out", "right"), ("reason", "left")):
        table.add_column(col, justify=justify)
    for r in flow.itertuples(index=False):
        table.add_row(str(r.step), str(r.unit), str(r.n_in), str(r.n_excluded) if r.n_excluded else "",
                      str(r.n_out), str(r.reason) if r.n_excluded else "")
    return table


@cohort_app.command("build")
def build_cmd(
    ecg_dir: Path = typer.Option(..., "--ecg-dir", help="Folder of ECG files (searched recursively)."),
    imaging: Path = typer.Option(..., "--imaging", help="Imaging CSV: patient_id, imaging_datetime, lvm_g, lvm_source[, height_cm, weight_kg, sex, age_years]."),
    out: Path = typer.Option(..., "--out", help="Manifest to write (.csv, or .parquet)."),
    window_days: float = typer.Option(183.0, "--window-days", min=0, help="Largest |ECG - imaging| time, days."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    workers: int = typer.Option(0, "--workers", help="Processes reading the ECG files (0 = the usable cores)."),
) -> None:
    """Pair each imaging LVM with the closest eligible ECG of the same patient; write manifest + flow table."""
    from elvmass.cohort import build_cohort, excluded_path_for, flow_path_for, write_manifest, write_table
    from elvmass.process_pool import default_workers

    n_workers = workers if workers > 0 else default_workers()
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        report_error(f"{out}: the manifest must end in .csv or .parquet")
        raise typer.Exit(2)
    try:
        if json_out:
            build = build_cohort(ecg_dir, imaging, window_days=window_days, workers=n_workers)
        else:
            from rich.progress import Progress

            with Progress(console=err_console, transient=True) as progress:
                task = progress.add_task("reading ECG files", total=None)

                def tick(i: int, n: int) -> None:
                    progress.update(task, completed=i, total=n)

                build = build_cohort(ecg_dir, imaging, window_days=window_days, progress=tick, workers=n_workers)
    except (ElvmassError, ValueError, OSError) as exc:
        report_error(str(exc))
        raise typer.Exit(2)
    from elvmass.atomic import atomic_group

    try:
        with atomic_group():  # manifest, flow and excluded tables land together, or the old ones stay
            manifest_path = write_manifest(build.manifest, out, relative_paths=True)
            flow_path = write_table(build.flow, flow_path_for(out))
            excluded_path = write_table(build.excluded, excluded_path_for(out))
    except OutputError as exc:  # disk full, a file where a folder should be: nothing of the new set landed
        report_error(f"cannot write {out} ({exc.reason}); the previous manifest, if any, is unchanged")
        raise typer.Exit(2)
    except (OSError, ValueError) as exc:
        report_error(f"cannot write {out} ({getattr(exc, 'strerror', None) or exc})")
        raise typer.Exit(2)

    n_pairs = len(build.manifest)
    if json_out:
        print_json_line({"manifest": str(manifest_path), "flow_csv": str(flow_path),
                         "excluded_csv": str(excluded_path), "n_pairs": n_pairs,
                         "flow": build.flow.to_dict(orient="records")})
        return
    console.print(_flow_table(build.flow, f"Cohort flow (window ±{window_days:g} days)"))
    console.print(f"{n_pairs} ECG–LVM pairs -> {manifest_path}", highlight=False, soft_wrap=True)
    console.print(f"flow table -> {flow_path}; excluded items -> {excluded_path}", highlight=False, soft_wrap=True)


@cohort_app.command("validate")
def validate_cmd(
    manifest: Path = typer.Argument(..., help="Manifest CSV or Parquet."),
    check_files: bool = typer.Option(True, "--check-files/--no-check-files", help="Require every ecg_path to exist."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Check every row of a manifest and print every bad row with its reasons (writes nothing).

    Exit status: 0 all rows valid, 1 some rows bad, 2 the file itself is unusable (unreadable, a
    required column missing, no data rows).
    """
    from elvmass.cohort import read_manifest, validate_manifest

    try:
        df = read_manifest(manifest)
        result = validate_manifest(df, base_dir=manifest.resolve().parent, check_files=check_files)
    except ManifestError as exc:
        msg = str(exc)
        report_error(msg if msg.startswith(str(manifest)) else f"{manifest}: {msg}")
        raise typer.Exit(2)

    if result.n_rows == 0:  # a header without rows is no cohort: unusable, like a missing column
        report_error(f"{manifest}: the manifest has no data rows (only a header)")
        raise typer.Exit(2)
    n_bad = len(result.bad_rows)
    if json_out:
        print_json_line({"manifest": str(manifest), "n_rows": result.n_rows, "n_valid": len(result.valid),
                         "n_bad_rows": n_bad,
                         "problems": [{"row": p.row, "patient_id": p.patient_id, "reason": p.reason}
                                      for p in result.problems]})
    else:
        if result.problems:
            is_csv = manifest.suffix.lower() not in (".parquet", ".pq")
            table = Table(title=f"{manifest}: {n_bad} bad row(s)")
            table.add_column("row", justify="right")
            if is_csv:
                table.add_column("line", justify="right")
            table.add_column("patient_id")
            table.add_column("reason")
            for p in result.problems:
                cells = [str(p.row)] + ([str(p.row + 2)] if is_csv else []) + [p.patient_id or "", p.reason]
                table.add_row(*cells)
            console.print(table)
        console.print(f"{result.n_rows} rows: {len(result.valid)} valid, {n_bad} bad", highlight=False)
    if result.problems:
        raise typer.Exit(1)
