"""`elvmass beats FILE...`: the signal pipeline on each ECG file (see :func:`elvmass.signal.analyze_ecg`).

Prints the R peaks, the chosen beat window, quality flags, fiducials, measured parameters and voltage
criteria (not for an unusable ECG); ``--json`` one JSON object per file and line; ``--plot`` the
configured ``--view`` on a calibrated 10 mm/mV grid (a beat with its fiducials and the PR / QRS / ST-T / TP
segments shaded, or the whole record / random crop with its R peaks).
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from elvmass.atomic import save_figure
from elvmass.cli._app import app, console, expand_ecg_paths, plot_path_for, print_json_line, report_error, write_plot
from elvmass.errors import ElvmassError


def _fmt(v, nd: int = 0, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and not math.isfinite(v):
        return "-"
    return f"{v:.{nd}f}{unit}" if isinstance(v, (int, float)) else str(v)


def plot_beat(analysis, path: Path) -> Path:
    """Save the configured view on a calibrated grid (10 mm/mV): for ``single_beat`` the chosen beat, for
    ``median_beat`` the median beat (both with the fiducials and the PR / QRS / ST-T / TP segments), for
    ``full`` and ``random_crop`` the stretch of the recording the model sees, with its R peaks ticked."""
    import numpy as np

    from elvmass.io.plot import PAPER_SPEED_MM_S, beat_figure

    view = analysis.view
    name = analysis.config.view
    if view is None or not np.isfinite(view).all():
        raise ElvmassError(f"{analysis.source_path}: no beat to plot ({', '.join(analysis.flags) or 'no beat found'})")
    fs = analysis.config.out_fs_hz
    label = f"{Path(analysis.source_path or '').name}: {name.replace('_', ' ')} {analysis.view_span_s[0]:.2f}-{analysis.view_span_s[1]:.2f} s"
    if name in ("single_beat", "median_beat"):
        fig = beat_figure(view, fs, fiducials_ms=analysis.fiducials_ms, segments_ms=analysis.segments_ms, title=label)
    else:
        t0, t1 = analysis.view_span_s
        marks = [t - t0 for t in analysis.r_peaks_s if t0 <= t <= t1]
        fig = beat_figure(view, fs, title=label, speed_mm_s=PAPER_SPEED_MM_S, marks_s=marks)
    return save_figure(fig, path, dpi=100)


def _print_human(a) -> None:
    from rich.table import Table

    from rich.markup import escape

    console.print(f"[bold]{escape(str(a.source_path))}[/bold]")  # "[a].xml" is a name, not markup
    rp = ", ".join(f"{t:.3f}" for t in a.r_peaks_s)
    console.print(f"  R peaks (s): {rp or '-'}")
    console.print(f"  beat window: {_fmt(a.beat_start_s, 3)} - {_fmt(a.beat_end_s, 3)} s")
    console.print(f"  flags: {', '.join(a.flags) if a.flags else 'none'}", highlight=False)
    f = a.fiducials_ms
    console.print(
        "  fiducials (ms from window start): "
        f"P on {_fmt(f['p_on'])}, P off {_fmt(f['p_off'])}, QRS on {_fmt(f['qrs_on'])}, QRS off {_fmt(f['qrs_off'])}, "
        f"T off {_fmt(f['t_off'])}"
    )
    console.print(f"  view: {a.config.view}, {a.view.shape[-1]} samples at {a.config.out_fs_hz:g} Hz, "
                  f"{_fmt(a.view_span_s[0], 2)} - {_fmt(a.view_span_s[1], 2)} s of the recording")
    from elvmass.signal.quality import is_blocking

    blocking = ", ".join(fl for fl in a.flags if is_blocking(fl))
    if not a.measurable:
        console.print(f"  measurements and criteria not reported: unusable ECG ({blocking})", highlight=False)
        return
    m = a.measured
    console.print(
        f"  measured: QRS {_fmt(m['qrs_ms'], 0, ' ms')}, PR {_fmt(m['pr_ms'], 0, ' ms')}, QT {_fmt(m['qt_ms'], 0, ' ms')}, "
        f"HR {_fmt(m['hr_bpm'], 0, ' bpm')}, axes P {_fmt(m['p_axis_deg'])} / R {_fmt(m['r_axis_deg'])} / T {_fmt(m['t_axis_deg'])} deg"
    )
    if not a.usable:
        console.print(f"  criteria not reported: unusable ECG ({blocking})", highlight=False)
        return
    c = a.criteria
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    table.add_column("criterion")
    table.add_column("value", justify="right")
    table.add_column("positive")
    table.add_row("Sokolow-Lyon", _fmt(c["sokolow_lyon_mv"], 2, " mV"), _fmt(c["sokolow_lyon_positive"]))
    table.add_row("Cornell voltage", _fmt(c["cornell_voltage_mv"], 2, " mV"), _fmt(c["cornell_voltage_positive"]))
    table.add_row("Cornell product", _fmt(c["cornell_product_mv_ms"], 0, " mV.ms"), _fmt(c["cornell_product_positive"]))
    table.add_row("Peguero-Lo Presti", _fmt(c["peguero_lo_presti_mv"], 2, " mV"), _fmt(c["peguero_lo_presti_positive"]))
    table.add_row("Romhilt-Estes", _fmt(c["romhilt_estes_points"], 0, " points"), _fmt(c["romhilt_estes_positive"]))
    console.print(table)


@app.command("beats")
def beats(
    files: list[Path] = typer.Argument(..., help="ECG files (MUSE/Philips/HL7 XML, DICOM, WFDB .hea, ...) or folders."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per file, one per line."),
    plot: Path | None = typer.Option(None, "--plot", help="Save the 12-lead beat with fiducials and segments (PNG); "
                                     "with several files out.png, out-2.png, ...; into an existing folder <ECG name>.png."),
    view: str = typer.Option("single_beat", help="single_beat | median_beat | full | random_crop"),
    low_hz: float = typer.Option(0.5, help="Band-pass low cut (Hz)."),
    high_hz: float = typer.Option(40.0, help="Band-pass high cut (Hz)."),
    notch_hz: float | None = typer.Option(None, help="Mains notch (50 or 60 Hz); off by default."),
    fs_hz: float | None = typer.Option(None, "--fs-hz", help="Sampling rate of .npy/.csv array files (they store none)."),
    delineation: str = typer.Option("rules", help="rules (default: what features and predict use) | segment (the "
                                    "LUDB-trained segmentation model's boundaries; ~10x slower) | hybrid (the rules, "
                                    "with P onset averaged with a network's, run by onnxruntime; ~1.4x slower; see "
                                    "docs/delineation.md)."),
) -> None:
    """R peaks, beat window, quality flags, fiducials, measured QRS/axes and voltage criteria of each ECG.

    A record with fewer than 12 leads (a 2-lead Holter or PhysioNet record, e.g. QTDB's MLII and V5) is
    delineated on the leads it has, with the flag ``missing_leads:...``; ``predict`` refuses it."""
    from elvmass import read_ecg
    from elvmass.signal import SignalConfig

    if delineation not in ("rules", "segment", "hybrid"):
        report_error(f"invalid option: --delineation must be 'rules', 'segment' or 'hybrid', got {delineation!r}")
        raise typer.Exit(2)
    if delineation == "segment":
        from elvmass.segment.delineate import analyze_ecg_segment as analyze_ecg
    else:  # the hybrid is a setting of the signal layer's analysis (its network runs without PyTorch)
        from elvmass.signal import analyze_ecg
    try:
        config = SignalConfig(view=view, low_hz=low_hz, high_hz=high_hz, notch_hz=notch_hz,
                              p_onset="hybrid" if delineation == "hybrid" else "rules")
    except ValueError as exc:
        report_error(f"invalid option: {exc}")
        raise typer.Exit(2)
    failed = 0
    plotted: set[Path] = set()
    expanded = expand_ecg_paths(files)
    if not expanded:  # as `predict` and `inspect`: an empty folder is a failure, not silence
        report_error("no ECG files found in the given paths")
        raise typer.Exit(1)
    for index, path in enumerate(expanded, start=1):
        try:
            analysis = analyze_ecg(read_ecg(path, fs_hz=fs_hz, partial_leads=True), config)
            analysis.source_path = str(path)
        except ElvmassError as exc:
            report_error(str(exc))
            failed += 1
            continue
        if plot is not None:
            out = plot_path_for(plot, index, path, plotted)
            if not write_plot(lambda o: plot_beat(analysis, o), path, out):
                failed += 1
                continue
        if json_out:
            print_json_line(analysis.to_json_dict())
        else:
            _print_human(analysis)
    if failed:
        raise typer.Exit(1)
