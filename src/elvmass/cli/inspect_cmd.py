"""`elvmass inspect FILE...`: what an ECG file holds, as text, JSON lines or a paper-style plot.

Wraps :func:`elvmass.io.read_ecg` (and :func:`elvmass.io.plot.plot_ecg_paper` for ``--plot``).
Bad files get one line on stderr each; the others are still inspected and the exit
status is 1 if any file failed.
"""

from __future__ import annotations

from pathlib import Path

import typer

from elvmass.cli._app import app, console, expand_ecg_paths, plot_path_for, print_json_line, report_error
from elvmass.errors import ElvmassError
from elvmass.record import LEADS, ECGRecord

_MEASUREMENT_KEYS = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg")


def inspect_json(record: ECGRecord, path) -> dict:
    """The ``--json`` object for one record."""
    p = record.patient
    m = record.measurements.as_dict()
    return {
        "path": str(path),
        "format": record.source_format,
        "fs_hz": record.fs_hz,
        "leads": list(LEADS),
        "n_samples": record.n_samples,
        "duration_s": round(record.duration_s, 3),
        "acquired_at": record.acquired_at.isoformat() if record.acquired_at else None,
        "patient": {"patient_id": p.patient_id, "age_years": p.age_years, "sex": p.sex, "height_cm": p.height_cm,
                    "weight_kg": p.weight_kg},
        "measurements": {k: m[k] for k in _MEASUREMENT_KEYS},
        "statements": list(record.statements),
        "flags": list(record.flags),
    }


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:g}"
    return f"{value}{(' ' + unit) if unit else ''}"


def _print_text(record: ECGRecord, path) -> None:
    from rich.markup import escape

    p, m = record.patient, record.measurements
    lines = [
        f"[bold]{escape(str(path))}[/bold]",
        f"  format       {record.source_format}",
        f"  rate         {record.fs_hz:g} Hz   samples {record.n_samples}   duration {record.duration_s:.2f} s",
        f"  leads        {' '.join(LEADS)}",
        f"  acquired     {record.acquired_at.isoformat(sep=' ') if record.acquired_at else '-'}",
        f"  patient      id {_fmt(p.patient_id)}   age {_fmt(p.age_years, 'y')}   sex {_fmt(p.sex)}   "
        f"height {_fmt(p.height_cm, 'cm')}   weight {_fmt(p.weight_kg, 'kg')}",
        f"  device       HR {_fmt(m.hr_bpm, 'bpm')}   PR {_fmt(m.pr_ms, 'ms')}   QRS {_fmt(m.qrs_ms, 'ms')}   "
        f"QT {_fmt(m.qt_ms, 'ms')}   QTc {_fmt(m.qtc_ms, 'ms')}",
        f"  axes         P {_fmt(m.p_axis_deg, 'deg')}   QRS {_fmt(m.r_axis_deg, 'deg')}   T {_fmt(m.t_axis_deg, 'deg')}",
    ]
    if record.statements:
        lines.append("  statements   " + "\n               ".join(escape(s) for s in record.statements))
    lines.append(f"  flags        {escape(', '.join(record.flags)) if record.flags else 'none'}")
    console.print("\n".join(lines), highlight=False, markup=True, soft_wrap=True)


@app.command("inspect")
def inspect(
    files: list[Path] = typer.Argument(
        None, help="ECG files (GE MUSE/Philips/HL7 XML, DICOM, WFDB .hea, .npy/.csv) or folders to scan."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file, one per line."),
    plot: Path = typer.Option(
        None, "--plot", help="Draw each ECG in the 4x3 + rhythm-strip paper layout: out.png, out-2.png, ...; "
        "an existing folder gets one <ECG name>.png per file."
    ),
    fs_hz: float = typer.Option(None, "--fs-hz", help="Sampling rate of .npy/.csv array files (they store none)."),
    example: bool = typer.Option(False, "--example", help="Inspect the bundled example ECG (PTB-XL record 136)."),
) -> None:
    """Show format, rate, leads, duration, patient fields and device measurements of ECG files."""
    from elvmass.io import example_ecg_path, read_ecg

    paths = list(files or [])
    if example:
        paths.insert(0, example_ecg_path())
    if not paths:
        report_error("give one or more ECG files (or --example)")
        raise typer.Exit(2)
    expanded = expand_ecg_paths(paths)
    if not expanded:  # as `predict` and `beats`: an empty folder is a failure, not silence
        report_error("no ECG files found in the given paths")
        raise typer.Exit(1)
    failed = 0
    plotted: set[Path] = set()
    for index, path in enumerate(expanded, start=1):
        try:
            record = read_ecg(path, fs_hz=fs_hz)
        except ElvmassError as exc:
            report_error(str(exc))
            failed += 1
            continue
        except Exception as exc:  # noqa: BLE001 - one line per file, never a traceback
            report_error(f"{path}: unexpected {type(exc).__name__} while reading: {' '.join(str(exc).split())}")
            failed += 1
            continue
        if as_json:
            print_json_line(inspect_json(record, path))
        else:
            _print_text(record, path)
        if plot is not None:
            from elvmass.io.plot import plot_ecg_paper

            out = plot_path_for(plot, index, path, plotted)
            try:
                plot_ecg_paper(record, out)
            except (OSError, ValueError) as exc:
                report_error(f"{path}: cannot write plot {out} ({exc})")
                failed += 1
                continue
            if not as_json:
                console.print(f"  plot         {out}", highlight=False)
    if failed:
        raise typer.Exit(1)
