"""`elvmass beats FILE...`: the signal pipeline on each ECG file (see :func:`elvmass.signal.analyze_ecg`).

Prints the R peaks, the chosen beat window, quality flags, fiducials, measured parameters and voltage
criteria; ``--json`` one JSON object per file and line; ``--plot`` the 12-lead beat with its fiducials
and the PR / QRS / ST-T / TP segments shaded.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from elvmass.atomic import save_figure
from elvmass.cli._app import app, console, expand_ecg_paths, plot_path_for, print_json_line, report_error
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
    """Save the 12-lead beat (the view's native-rate beat) with fiducials and shaded segments."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from elvmass.record import LEADS

    beat = analysis.beat_mv
    if beat is None:
        raise ElvmassError(f"{analysis.source_path}: no beat to plot ({', '.join(analysis.flags) or 'no beat found'})")
    t_ms = np.arange(beat.shape[1]) * 1000.0 / analysis.fs_hz
    colours = {"pr": "#4C72B0", "qrs": "#DD8452", "st_t": "#55A868", "tp": "#BBBBBB"}
    fig, axes = plt.subplots(6, 2, figsize=(10, 11), sharex=True)
    for i, lead in enumerate(LEADS):
        ax = axes[i % 6, i // 6]
        for name, parts in analysis.segments_ms.items():
            for a, b in parts:
                ax.axvspan(a, b, color=colours[name], alpha=0.18, lw=0, label=name if i == 0 and a == parts[0][0] else None)
        ax.plot(t_ms, beat[i], color="k", lw=0.9)
        for v in analysis.fiducials_ms.values():
            if math.isfinite(v):
                ax.axvline(v, color="r", lw=0.6, ls="--")
        ax.set_ylabel(f"{lead} (mV)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("ms from beat window start")
    axes[-1, 1].set_xlabel("ms from beat window start")
    axes[0, 0].legend(fontsize=7, loc="upper left", ncol=4)
    fig.suptitle(f"{Path(analysis.source_path or '').name}: beat {analysis.beat_start_s:.2f}-{analysis.beat_end_s:.2f} s", fontsize=10)
    fig.tight_layout()
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
        f"P on {_fmt(f['p_on'])}, QRS on {_fmt(f['qrs_on'])}, QRS off {_fmt(f['qrs_off'])}, T off {_fmt(f['t_off'])}"
    )
    m = a.measured
    console.print(
        f"  measured: QRS {_fmt(m['qrs_ms'], 0, ' ms')}, PR {_fmt(m['pr_ms'], 0, ' ms')}, QT {_fmt(m['qt_ms'], 0, ' ms')}, "
        f"HR {_fmt(m['hr_bpm'], 0, ' bpm')}, axes P {_fmt(m['p_axis_deg'])} / R {_fmt(m['r_axis_deg'])} / T {_fmt(m['t_axis_deg'])} deg"
    )
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
) -> None:
    """R peaks, beat window, quality flags, fiducials, measured QRS/axes and voltage criteria of each ECG."""
    from elvmass import read_ecg
    from elvmass.signal import SignalConfig, analyze_ecg

    try:
        config = SignalConfig(view=view, low_hz=low_hz, high_hz=high_hz, notch_hz=notch_hz)
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
            analysis = analyze_ecg(read_ecg(path, fs_hz=fs_hz), config)
            analysis.source_path = str(path)
        except ElvmassError as exc:
            report_error(str(exc))
            failed += 1
            continue
        if plot is not None:
            out = plot_path_for(plot, index, path, plotted)
            try:
                plot_beat(analysis, out)
            except (OSError, ValueError) as exc:
                report_error(f"{path}: cannot write plot {out} ({getattr(exc, 'strerror', None) or exc})")
                failed += 1
                continue
        if json_out:
            print_json_line(analysis.to_json_dict())
        else:
            _print_human(analysis)
    if failed:
        raise typer.Exit(1)
