"""Draw a 12-lead ECG the way it is printed on paper: 4 x 3 leads plus a lead II rhythm strip.

Standard speed and gain (25 mm/s, 10 mm/mV) on a 1 mm / 5 mm grid, each row starting with a
1 mV calibration pulse. Columns show consecutive 2.5 s windows, as a cart prints them:
I/II/III, aVR/aVL/aVF, V1-V3, V4-V6; the bottom strip is lead II for the whole 10 s::

    >>> from elvmass.io import example_ecg_path, read_ecg
    >>> from elvmass.io.plot import plot_ecg_paper
    >>> plot_ecg_paper(read_ecg(example_ecg_path()), "/tmp/ecg.png")  # doctest: +SKIP
    PosixPath('/tmp/ecg.png')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elvmass.atomic import save_figure
from elvmass.record import LEAD_INDEX, ECGRecord

PAPER_SPEED_MM_S = 25.0
GAIN_MM_MV = 10.0
_LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
_RHYTHM_LEAD = "II"
_ROW_MM = 30.0
_CAL_MM = 10.0  # room for the calibration pulse at the left of each row
_STRIP_S = 10.0


def _title(record: ECGRecord) -> str:
    p, m = record.patient, record.measurements
    bits = [Path(record.source_path).name if record.source_path else "ECG", f"{record.source_format or ''}",
            f"{record.fs_hz:g} Hz"]
    if p.age_years is not None:
        bits.append(f"{p.age_years:g} y")
    if p.sex:
        bits.append(p.sex)
    if p.height_cm:
        bits.append(f"{p.height_cm:g} cm")
    if p.weight_kg:
        bits.append(f"{p.weight_kg:g} kg")
    for label, value, unit in (("HR", m.hr_bpm, "bpm"), ("QRS", m.qrs_ms, "ms"), ("QT", m.qt_ms, "ms")):
        if value is not None:
            bits.append(f"{label} {value:g} {unit}")
    return "   ".join(b for b in bits if b) + "   25 mm/s  10 mm/mV"


def plot_ecg_paper(record: ECGRecord, path, *, dpi: int = 150, title: str | None = None) -> Path:
    """Save the paper-layout plot of ``record`` to ``path`` (PNG, PDF or SVG by extension)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    path = Path(path)
    fs = record.fs_hz
    n_show = min(record.n_samples, int(round(_STRIP_S * fs)))
    shown_s = n_show / fs
    col_s = _STRIP_S / 4.0
    width_mm = _CAL_MM + _STRIP_S * PAPER_SPEED_MM_S
    n_rows = len(_LAYOUT) + 1
    height_mm = n_rows * _ROW_MM

    fig = plt.figure(figsize=(width_mm / 25.4 * 1.1, height_mm / 25.4 * 1.1 + 0.4))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.93))
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    ax.set_aspect("equal")
    ax.axis("off")

    minor = [[(x, 0), (x, height_mm)] for x in np.arange(0, width_mm + 0.01, 1.0)]
    minor += [[(0, y), (width_mm, y)] for y in np.arange(0, height_mm + 0.01, 1.0)]
    major = [[(x, 0), (x, height_mm)] for x in np.arange(0, width_mm + 0.01, 5.0)]
    major += [[(0, y), (width_mm, y)] for y in np.arange(0, height_mm + 0.01, 5.0)]
    ax.add_collection(LineCollection(minor, colors="#f6c6c6", linewidths=0.25, zorder=0))
    ax.add_collection(LineCollection(major, colors="#e88a8a", linewidths=0.6, zorder=1))

    def baseline(row: int) -> float:
        return height_mm - (row + 0.5) * _ROW_MM - 2.5

    def draw(trace: np.ndarray, x0_mm: float, y0_mm: float) -> None:
        t_mm = np.arange(trace.size) / fs * PAPER_SPEED_MM_S
        y = np.nan_to_num(trace.astype(np.float64), nan=0.0)
        y = y - np.median(y) if y.size else y
        ax.plot(x0_mm + t_mm, y0_mm + y * GAIN_MM_MV, color="black", linewidth=0.6, zorder=3, clip_on=False)

    for row in range(n_rows):
        y0 = baseline(row)
        cal = [(1, y0), (3, y0), (3, y0 + GAIN_MM_MV), (8, y0 + GAIN_MM_MV), (8, y0), (_CAL_MM, y0)]
        ax.plot(*zip(*cal), color="black", linewidth=0.6, zorder=3)
        if row < len(_LAYOUT):
            for col, lead in enumerate(_LAYOUT[row]):
                a, b = int(round(col * col_s * fs)), int(round((col + 1) * col_s * fs))
                segment = record.signal_mv[LEAD_INDEX[lead], a:min(b, n_show)]
                x0 = _CAL_MM + col * col_s * PAPER_SPEED_MM_S
                if segment.size:
                    draw(segment, x0, y0)
                ax.text(x0 + 1.5, y0 + 11, lead, fontsize=7, zorder=4)
                if col:
                    ax.plot([x0, x0], [y0 - 3, y0 + 3], color="black", linewidth=0.6, zorder=3)
        else:
            draw(record.signal_mv[LEAD_INDEX[_RHYTHM_LEAD], :n_show], _CAL_MM, y0)
            ax.text(_CAL_MM + 1.5, y0 + 11, f"{_RHYTHM_LEAD} (rhythm)", fontsize=7, zorder=4)
    head = title if title is not None else _title(record)
    if shown_s < _STRIP_S - 1e-6:
        head += f"   (record is {shown_s:.1f} s)"
    fig.suptitle(head, fontsize=8, x=0.01, ha="left")

    return save_figure(fig, path, dpi=dpi)


BEAT_SPEED_MM_S = 50.0
_BEAT_ROW_MM = 25.0  # 2.5 mV between lead baselines; taller waves overlap the next lead, as on paper
_SEGMENT_COLOURS = {"pr": "#4C72B0", "qrs": "#DD8452", "st_t": "#55A868", "tp": "#999999"}


def beat_figure(beat_mv: np.ndarray, fs_hz: float, *, fiducials_ms: dict | None = None,
                segments_ms: dict | None = None, title: str = "", speed_mm_s: float = BEAT_SPEED_MM_S,
                marks_s=()):
    """A matplotlib figure of a (12, W) beat (or any synchronized 12-lead stretch) on a calibrated grid.

    One scale for every lead: ``speed_mm_s`` (50 mm/s by default, a beat is short) and 10 mm/mV, on a
    1 mm / 5 mm grid with a 1 mV calibration pulse per row; leads in two columns (I-aVF, V1-V6) with
    baselines 25 mm apart. Waves are not clipped: a tall R runs into the neighbouring lead, as on paper.
    ``fiducials_ms`` are drawn as dashed lines, ``segments_ms`` (name -> [(a, b)] in ms) shaded; the
    legend lists only the segments present. ``marks_s``: instants (s from the start) ticked on every lead
    (e.g. R peaks of a full-record view). The axes' data units are millimetres of paper.

    >>> fig = beat_figure(np.zeros((12, 450)), 500.0)
    >>> ax = fig.axes[0]; p0, p1 = ax.transData.transform([(0, 0), (0, 10)])
    >>> round(float(p1[1] - p0[1]) / fig.dpi * 25.4, 3)   # 1 mV (10 mm of paper) is 10 mm on the figure
    10.0
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from elvmass.record import LEADS

    x = np.asarray(beat_mv, dtype=np.float64)
    n = x.shape[1]
    col_mm = n / fs_hz * speed_mm_s
    gap_mm = 8.0
    width_mm = 2 * (_CAL_MM + col_mm) + gap_mm
    height_mm = 6 * _BEAT_ROW_MM + 10.0
    fig = plt.figure(figsize=(width_mm / 25.4, height_mm / 25.4))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    ax.axis("off")
    minor = [[(v, 0), (v, height_mm)] for v in np.arange(0, width_mm + 0.01, 1.0)]
    minor += [[(0, v), (width_mm, v)] for v in np.arange(0, height_mm + 0.01, 1.0)]
    major = [[(v, 0), (v, height_mm)] for v in np.arange(0, width_mm + 0.01, 5.0)]
    major += [[(0, v), (width_mm, v)] for v in np.arange(0, height_mm + 0.01, 5.0)]
    ax.add_collection(LineCollection(minor, colors="#f6c6c6", linewidths=0.25, zorder=0))
    ax.add_collection(LineCollection(major, colors="#e88a8a", linewidths=0.6, zorder=1))
    t_mm = np.arange(n) / fs_hz * speed_mm_s
    drawn: set[str] = set()
    for i, lead in enumerate(LEADS):
        col, row = i // 6, i % 6
        x0 = col * (_CAL_MM + col_mm + gap_mm) + _CAL_MM
        y0 = height_mm - 10.0 - (row + 0.5) * _BEAT_ROW_MM
        for name, parts in (segments_ms or {}).items():
            for a, b in parts:
                ax.add_patch(plt.Rectangle((x0 + a / 1000 * speed_mm_s, y0 - _BEAT_ROW_MM / 2), (b - a) / 1000 * speed_mm_s,
                                           _BEAT_ROW_MM, color=_SEGMENT_COLOURS.get(name, "#cccccc"), alpha=0.18, lw=0,
                                           zorder=1.5, label=name if name not in drawn else None))
                drawn.add(name)
        cal = [(x0 - 9, y0), (x0 - 7, y0), (x0 - 7, y0 + GAIN_MM_MV), (x0 - 2, y0 + GAIN_MM_MV), (x0 - 2, y0), (x0, y0)]
        ax.plot(*zip(*cal), color="black", linewidth=0.6, zorder=3)
        ax.plot(x0 + t_mm, y0 + np.nan_to_num(x[i]) * GAIN_MM_MV, color="black", lw=0.7, zorder=3, clip_on=False)
        for v in (fiducials_ms or {}).values():
            if v is not None and np.isfinite(v) and 0 <= v <= n / fs_hz * 1000:
                xm = x0 + v / 1000 * speed_mm_s
                ax.plot([xm, xm], [y0 - 8, y0 + 8], color="red", lw=0.6, ls="--", zorder=4)
        for s in marks_s:
            xm = x0 + s * speed_mm_s
            ax.plot([xm, xm], [y0 - 11, y0 - 9], color="blue", lw=0.8, zorder=4)
        ax.text(x0 + 1, y0 + 9, lead, fontsize=7, zorder=5)
    if drawn:
        ax.legend(loc="lower right", fontsize=7, ncol=len(drawn), framealpha=0.9)
    ax.text(1, height_mm - 5, f"{title}   {speed_mm_s:g} mm/s  {GAIN_MM_MV:g} mm/mV", fontsize=8, va="center")
    return fig
