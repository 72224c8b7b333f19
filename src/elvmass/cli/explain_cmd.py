"""`elvmass explain`: for each ECG, the predicted LV mass and where the model looked (gradient saliency
by ECG segment x lead group), optionally drawn as a heat map behind the 12-lead beat."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from elvmass.cli._app import app, console, expand_ecg_paths, fail, print_json_line, report_error
from elvmass.errors import ECGReadError, ElvmassError


@app.command("explain")
def explain(
    files: List[Path] = typer.Argument(..., help="ECG files or folders (searched recursively)."),
    model: Path = typer.Option(..., "--model", help="Model bundle folder from `elvmass train`."),
    sex: Optional[str] = typer.Option(None, "--sex", help="M or F (overrides the file; picks the sex-specific model)."),
    method: str = typer.Option("gradient", "--method", help="gradient, smoothgrad or integrated_gradients."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per file per line."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG: each ECG's beat with the saliency heat map."),
) -> None:
    """Predicted LVM and its saliency by segment (PR, QRS, ST-T, TP) x lead group (LL, PL), in % of the
    ECG's total; a file that cannot be read or has no usable beat is one error line (exit status 1)."""
    from elvmass import read_ecg
    from elvmass.bundle import load_bundle
    from elvmass.predict import predict_record
    from elvmass.explain import METHODS, SEGMENTS, plot_saliency, saliency_for_record

    if method not in METHODS:
        fail(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if sex is not None:
        s = sex.strip().upper()[:1]
        if s not in ("M", "F"):
            fail(f"--sex must be M or F, got {sex!r}")
        sex = s
    try:
        bundle = load_bundle(model)
    except ElvmassError as exc:
        fail(str(exc))
    paths = expand_ecg_paths(files)
    if not paths:
        fail("no ECG files found in the given paths")
    results, n_err = [], 0
    for p in paths:
        try:
            rec = read_ecg(p)
            sx = sex if sex is not None else rec.patient.sex
            pred = predict_record(bundle, rec, path=str(p), sex=sx)  # the estimate and flags of `elvmass predict`
            r = saliency_for_record(bundle, rec, model=pred.model, method=method, sex=sx)
            r["lvm_g"] = pred.lvm_g
            r["flags"] = list(dict.fromkeys([*pred.flags, *r["flags"]]))
        except ECGReadError as exc:
            report_error(str(exc))
            n_err += 1
            continue
        except (ElvmassError, ValueError, TypeError, KeyError) as exc:
            report_error(f"{p}: {' '.join(str(exc).split())}")
            n_err += 1
            continue
        r["path"] = str(p)
        results.append(r)
        if json_out:
            print_json_line({"path": str(p), "lvm_g": round(r["lvm_g"], 1), "model": r["model"], "method": r["method"],
                             "segments": r["segments"], "unassigned_pct": r["unassigned_pct"],
                             "missing": r["missing"], "flags": r["flags"]})
    if not json_out:
        from rich.table import Table

        t = Table(title=f"Saliency ({method}), % of each ECG's total ({len(results)} file(s), {n_err} failed)")
        t.add_column("file", overflow="fold")
        t.add_column("LVM (g)", justify="right")
        t.add_column("model")
        for s in SEGMENTS:
            for g in ("ll", "pl"):
                t.add_column(f"{s.replace('_', '-').upper()} {g.upper()}", justify="right")
        t.add_column("flags", overflow="fold")
        for r in results:
            t.add_row(Path(r["path"]).name, f"{r['lvm_g']:.0f}", r["model"],
                      *[f"{r['segments'][s][g]:.1f}" for s in SEGMENTS for g in ("ll", "pl")],
                      ", ".join(r["flags"]) or "–")
        console.print(t)
    if plot is not None and results:
        items = [{**r, "title": f"{Path(r['path']).name}: {r['lvm_g']:.0f} g ({r['model']})"} for r in results]
        plot_saliency(items, plot)
        if not json_out:
            console.print(f"figure: {plot}", highlight=False)
    if n_err:
        raise typer.Exit(1)
