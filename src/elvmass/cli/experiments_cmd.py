"""`elvmass experiments`: the paper's experiment tables (1a-1c, 2, 3, S2, S4, S5, and any registered more)
in one resumable run, serially or on Dask. A thin wrapper over
:func:`elvmass.experiments.experiments.run_experiments`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from elvmass.cli._app import app, console, err_console, fail, print_json_line
from elvmass.errors import ElvmassError


def _log(msg: str) -> None:
    err_console.print(msg, highlight=False, soft_wrap=True)


def _runner(workers: Optional[int], scheduler: Optional[str], log):
    """None (serial, in this process) for --workers 0 or when only one local slot fits; else Dask."""
    from elvmass.experiments.runner import dask_runner

    if scheduler:
        return dask_runner(scheduler=scheduler, log=log)
    if workers is None or workers == 1 or workers == 0:
        return None
    return dask_runner(n_workers=workers, log=log)


@app.command("experiments")
def experiments(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort manifest (CSV or Parquet), e.g. from `elvmass cohort build`."),
    out: Path = typer.Option(..., "--out", help="Results folder (experiments.json, table_*.csv/.md, predictions.csv, report.html)."),
    tables: str = typer.Option("1a,1b,1c,s4,s5", "--tables", help="Comma-separated table keys: 1a, 1b, 1c, s4, s5 (default), 2 (comparators), s2 (LVH: "
                        "voltage criteria and models), 3 (saliency, with Figure 4), and any registered more."),
    preset: str = typer.Option("paper", "--preset", help="quick (smoke test) or paper."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local Dask workers (default: cores / threads of one "
                                          "training; 0 or 1: in this process, no Dask)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="An existing Dask cluster, tcp://HOST:PORT."),
    models: str = typer.Option("", "--models", help="Extra registered models to compare with eLVMass-Net, comma-separated."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda (auto: CUDA when present)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Preprocessed-ECG cache (default: .elvmass-cache beside the manifest)."),
    seed: int = typer.Option(0, "--seed", help="Seed of model initialisation, batching and validation split."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override the preset's maximum epochs (smoke runs)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads per training (default: the preset's, 2)."),
    json_out: bool = typer.Option(False, "--json", help="Print experiments.json to stdout instead of the tables."),
    quiet: bool = typer.Option(False, "--quiet", help="No per-task lines."),
) -> None:
    """Run the paper's experiment tables under the 5-fold protocol; finished tasks in OUT/tasks are reused."""
    from elvmass.cli.study_cmd import _check_device, _check_preset, _model_names
    from elvmass.experiments.experiments import parse_tables, run_experiments
    from elvmass.experiments.runner import default_workers

    import dataclasses

    chosen = _check_preset(preset, seed=seed)
    overrides = {k: v for k, v in (("epochs", epochs), ("num_threads", threads)) if v is not None}
    if any(v < 1 for v in overrides.values()):
        fail("--epochs and --threads must be at least 1")
    if overrides:
        chosen = dataclasses.replace(chosen, train=dataclasses.replace(chosen.train, **overrides))
    try:
        keys = parse_tables(tables)
    except ValueError as exc:
        fail(f"--tables: {exc}")
    if workers is not None and workers < 0:
        fail(f"--workers must be 0 or more, got {workers}")
    if workers is None and not scheduler:
        workers = default_workers(chosen.train.num_threads)
    log = None if quiet or json_out else _log
    try:
        results = run_experiments(cohort, out, chosen, tables=keys, models=_model_names(models),
                                  runner=_runner(workers, scheduler, log), device=_check_device(device),
                                  cache_dir=cache_dir, log=log)
    except (ElvmassError, ValueError, OSError) as exc:
        fail(str(exc))
    if json_out:
        print_json_line(results)
        return
    for key in results["tables"]:
        console.print((out / f"table_{key}.md").read_text(encoding="utf-8"), highlight=False, markup=False,
                      soft_wrap=True)
    console.print(f"report: {out / 'report.html'}  ({results['elapsed_s']:.0f} s)", highlight=False)
