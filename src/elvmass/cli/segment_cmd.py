"""`elvmass segment FILE...`: the P waves, QRS complexes and T waves the segmentation model finds
(see :mod:`elvmass.segment`), and `elvmass segment train --ludb DIR --out MODEL_DIR` to retrain it.

``--json`` prints one object per file and line: ``path``, ``fs_hz``, ``waves`` (global, multi-lead:
``{"wave": "P"|"QRS"|"T", "onset_s", "offset_s"}`` from the start of the record) and ``qrs_ms`` (the
median global QRS duration). ``--plot`` saves the 12 leads with each lead's waves shaded.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer
import typer.core

from elvmass.cli._app import app, console, expand_ecg_paths, fail, plot_path_for, print_json_line, report_error, write_plot
from elvmass.errors import ElvmassError

COLOURS = {"P": "#4C72B0", "QRS": "#DD8452", "T": "#55A868"}


class _SegmentGroup(typer.core.TyperGroup):
    """``segment FILE...`` runs the model; ``segment train ...`` is the one sub-command."""

    def parse_args(self, ctx, args):
        if args and args[0] not in ("train", "run", "--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


segment_app = typer.Typer(cls=_SegmentGroup, no_args_is_help=True, add_completion=False,
                          help="Segment ECGs into P waves, QRS complexes and T waves (a CNN trained on LUDB + HMM).\n\n"
                          "elvmass segment FILE... [--json] [--plot out.png] [--model DIR]: the waves of each ECG "
                          "(--json: path, fs_hz, global waves, qrs_ms). elvmass segment train --ludb DIR --out MODEL_DIR: retrain.")
app.add_typer(segment_app, name="segment")


def plot_segmentation(record, seg, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from elvmass.atomic import save_figure
    from elvmass.record import LEADS

    t = np.arange(record.n_samples) / record.fs_hz
    fig, axes = plt.subplots(12, 1, figsize=(12, 16), sharex=True)
    for i, lead in enumerate(LEADS):
        ax = axes[i]
        for w in seg.lead_waves[i]:
            ax.axvspan(w.onset_s, w.offset_s, color=COLOURS[w.wave], alpha=0.3, lw=0)
        ax.plot(t, record.signal_mv[i], color="k", lw=0.6)
        ax.set_ylabel(lead, fontsize=8)
        ax.tick_params(labelsize=7)
    for w in seg.waves:
        axes[0].axvspan(w.onset_s, w.offset_s, ymin=0.9, ymax=1.0, color=COLOURS[w.wave], alpha=0.9, lw=0)
    axes[-1].set_xlabel("s from record start (top bar: global waves; blue P, orange QRS, green T)")
    fig.suptitle(f"{Path(seg.source_path or '').name}: median global QRS {seg.qrs_ms:.0f} ms", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)


def _print_human(seg) -> None:
    console.print(f"[bold]{seg.source_path}[/bold]  ({seg.fs_hz:g} Hz)")
    q = seg.qrs_ms
    console.print(f"  median global QRS: {q:.0f} ms" if math.isfinite(q) else "  median global QRS: -")
    for name in ("P", "QRS", "T"):
        ws = seg.of(name)
        txt = ", ".join(f"{w.onset_s:.3f}-{w.offset_s:.3f}" for w in ws)
        console.print(f"  {name} ({len(ws)}): {txt or '-'}", highlight=False)


@segment_app.command("run", hidden=True)
def segment_files(
    files: list[Path] = typer.Argument(..., help="ECG files (MUSE/Philips/HL7 XML, DICOM, WFDB .hea, ...) or folders."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per file, one per line."),
    plot: Path | None = typer.Option(None, "--plot", help="Save the 12 leads with their waves shaded (PNG)."),
    model: Path | None = typer.Option(None, "--model", help="A model folder from `elvmass segment train` (default: shipped)."),
    fs_hz: float | None = typer.Option(None, "--fs-hz", help="Sampling rate of .npy/.csv array files."),
) -> None:
    """P waves, QRS complexes and T waves of each ECG, and its median global QRS duration."""
    from elvmass import read_ecg
    from elvmass.segment import load_segmenter

    try:
        segmenter = load_segmenter(model)
    except ElvmassError as exc:
        report_error(str(exc))
        raise typer.Exit(2)
    failed = 0
    plotted: set[Path] = set()
    for index, path in enumerate(expand_ecg_paths(files), start=1):
        try:
            record = read_ecg(path, fs_hz=fs_hz)
            seg = segmenter.segment(record)
            seg.source_path = str(path)
        except ElvmassError as exc:
            report_error(str(exc))
            failed += 1
            continue
        if plot is not None:
            out = plot_path_for(plot, index, path, plotted)
            if not write_plot(lambda o: plot_segmentation(record, seg, o), path, out):
                failed += 1
                continue
        if json_out:
            print_json_line(seg.to_json_dict())
        else:
            _print_human(seg)
    if failed:
        raise typer.Exit(1)


@segment_app.command("train")
def segment_train(
    ludb: Path = typer.Option(..., "--ludb", help="The LUDB folder (with data/N.hea and the per-lead annotation files)."),
    out: Path = typer.Option(..., "--out", help="Folder to write segment.safetensors and segment.json into."),
    steps: int = typer.Option(500, help="Adam steps (batches of 32 random 4-s single-lead crops)."),
    seed: int = typer.Option(0, help="Random seed (same seed, same weights)."),
    train_records: str = typer.Option("not-div5", "--train-records",
                                      help="not-div5: the 96 records not numbered 5, 10, ..., 120 (the shipped model); "
                                           "odd: the 60 odd-numbered ones (the rules' tuning part)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
) -> None:
    """Train the segmentation model on LUDB's training records (by default the 96 not numbered 5, 10, ..., 120;
    those 24 are held out)."""
    import sys

    from elvmass.segment.ludb import TRAIN_SPLITS
    from elvmass.segment.train import train_segmenter

    if train_records not in TRAIN_SPLITS:
        fail(f"--train-records must be one of {', '.join(TRAIN_SPLITS)}, got {train_records!r}", 2)
    command = "elvmass segment train --ludb {} --out {} --steps {} --seed {}".format(ludb, out, steps, seed)
    if train_records != "not-div5":
        command += f" --train-records {train_records}"
    seg = train_segmenter(ludb, steps=steps, seed=seed, command=command, records=TRAIN_SPLITS[train_records],
                          progress=None if quiet else (lambda m: print(m, file=sys.stderr, flush=True)))
    seg.save(out)
    console.print(f"wrote {out} (final loss {seg.meta['final_loss']:.4f}, {seg.meta['n_parameters']} parameters)")
