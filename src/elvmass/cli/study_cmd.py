"""`elvmass study`, `elvmass train`, `elvmass predict` and `elvmass demo`.

Thin wrappers over :func:`elvmass.experiments.study.run_study`, :func:`elvmass.experiments.final.train_bundle`,
:func:`elvmass.predict.predict_files` and the synthetic cohort generator.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer

from elvmass.cli._app import app, console, err_console, expand_ecg_paths, fail, print_json_line, report_error
from elvmass.errors import ElvmassError, ManifestError

PRESETS = ("quick", "paper")


@contextmanager
def _progress_bar(description: str, enabled: bool = True):
    """A rich progress bar on stderr; yields a ``progress(i, n)`` callback (or None when disabled)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=True)
    task = prog.add_task(description, total=None)
    with prog:
        def cb(i: int, n: int) -> None:
            prog.update(task, completed=i, total=n)

        yield cb


def _check_preset(preset: str, inputs: str = "all", seed: int = 0):
    """The named preset with the chosen input combination (exits with one line on a bad name)."""
    from elvmass.experiments.study import make_preset
    from elvmass.models.elvmassnet import INPUT_SETS

    if preset not in PRESETS:
        fail(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}", 2)
    if inputs not in INPUT_SETS:
        fail(f"--inputs must be one of {', '.join(INPUT_SETS)}, got {inputs!r}", 2)
    return make_preset(preset, inputs=inputs, seed=seed)



def _model_names(models: str) -> list[str]:
    """``--models a,b`` -> ["a", "b"], each checked against the registered models (one line if not)."""
    from elvmass.models.registry import model_recipes

    names = [m.strip() for m in models.split(",") if m.strip()]
    known = model_recipes()
    bad = [m for m in names if m not in known and m not in known.values()]
    if bad:
        fail(f"--models: unknown model {bad[0]!r}; choose from {', '.join(sorted(set(known) | set(known.values())))}")
    return names


def _check_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        fail(f"--device must be auto, cpu or cuda, got {device!r}")
    return device


def _log(msg: str) -> None:
    err_console.print(msg, highlight=False)


def _print_summary(results: dict) -> None:
    from rich.table import Table

    from elvmass.report.tables import MODEL_LABELS

    t = Table(title=f"eLVMass-Net study, n = {results['n']} ({results['config']['preset']['n_folds']}-fold CV)")
    for col in ("model", "MAE (g)", "MAPE (%)", "c-statistic (LVH)"):
        t.add_column(col)
    for name, m in results["models"].items():
        mae, mape = m["mae_g"], m["mape_pct"]
        c = m["lvh"].get("c_statistic")
        t.add_row(MODEL_LABELS.get(name, name), f"{mae['mean']:.1f} ± {mae['sd'] or 0:.1f}",
                  f"{mape['mean']:.1f} ± {mape['sd'] or 0:.1f}", "–" if c is None else f"{c:.3f}")
    console.print(t)
    for c in results["comparisons"]:
        if c["subset"] == "all" and c["metric"] == "mae_g":
            p = c["p_value"]
            console.print(f"  {c['a']} vs {c['b']}: MAE {c['a_value']:.1f} vs {c['b_value']:.1f} g, "
                          f"paired fold-level p = {'n/a' if p is None else format(p, '.3g')}", highlight=False)


@app.command("study")
def study(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort manifest (CSV or Parquet), e.g. from `elvmass cohort build`."),
    out: Path = typer.Option(..., "--out", help="Results folder (results.json, predictions.csv, tables, report.html)."),
    preset: str = typer.Option("paper", "--preset", help="quick (smoke test) or paper (the paper's protocol)."),
    sex_specific: bool = typer.Option(False, "--sex-specific/--no-sex-specific", help="Also train and test male and female models (off by default: it about doubles the training time; `train` fits them by default because `predict` uses them)."),
    inputs: str = typer.Option("all", "--inputs", help="ecg, ecg+params, ecg+demographics or all (the paper's combinations)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Preprocessed-ECG cache (default: .elvmass-cache beside the manifest)."),
    json_out: bool = typer.Option(False, "--json", help="Print results.json to stdout instead of a table."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or fold lines."),
    seed: int = typer.Option(0, "--seed", help="Seed of model initialisation, batching and validation split."),
    models: str = typer.Option("", "--models", help="Extra models beside eLVMass-Net and demographics, comma-separated "
                               "(registered names or families, e.g. lvm_ai,ecg_ai,criteria_linear)."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda (auto: CUDA when present)."),
    saliency: bool = typer.Option(False, "--saliency", help="Also write table_3.{csv,md}: saliency by segment, lead group "
                                  "and LVM tertile of every fold model on its own test cases."),
) -> None:
    """Run the cross-validated eLVMass-Net study protocol on a cohort and write a report."""
    from elvmass.atomic import atomic_dir
    from elvmass.experiments.study import run_study

    chosen = _check_preset(preset, inputs, seed)
    try:
        with atomic_dir(out) as tmp:  # the previous results stay whole until the new ones are complete
            results = run_study(cohort, tmp, chosen, sex_specific=sex_specific, models=_model_names(models),
                                cache_dir=cache_dir, progress=not quiet and not json_out, log=None if quiet else _log,
                                device=_check_device(device), saliency=saliency)
    except ManifestError as exc:  # the manifest given is unusable: exit 2, as `cohort validate`
        fail(str(exc), 2)
    except (ElvmassError, ValueError) as exc:
        fail(str(exc))
    if json_out:
        print_json_line(results)
        return
    _print_summary(results)
    console.print(f"report: {out / 'report.html'}  ({results['elapsed_s']:.0f} s)", highlight=False)


@app.command("train")
def train(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort manifest (CSV or Parquet)."),
    out: Path = typer.Option(..., "--out", help="Model bundle folder to write."),
    preset: str = typer.Option("paper", "--preset", help="quick or paper."),
    sex_specific: bool = typer.Option(True, "--sex-specific/--no-sex-specific", help="Also fit male and female models."),
    inputs: str = typer.Option("all", "--inputs", help="ecg, ecg+params, ecg+demographics or all."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Preprocessed-ECG cache (default: .elvmass-cache beside the manifest)."),
    onnx: bool = typer.Option(False, "--onnx", help="Also export every model to ONNX (for `predict --engine onnx`)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or log lines."),
    seed: int = typer.Option(0, "--seed", help="Seed of model initialisation, batching and validation split."),
    models: str = typer.Option("", "--models", help="Extra models to fit and save, comma-separated (e.g. lvm_ai,ecg_ai)."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda (auto: CUDA when present)."),
    calibration_fraction: float = typer.Option(0.1, "--calibration-fraction", help="Share of patients held out to "
                                               "calibrate the prediction intervals (0: no intervals)."),
    study_dir: Optional[Path] = typer.Option(None, "--study", help="A study results folder on this cohort: its "
                                             "cross-validated performance and coverage go into the model card."),
) -> None:
    """Fit the final models on the whole cohort and save a model bundle (safetensors + JSON + model card)."""
    from elvmass.atomic import atomic_dir
    from elvmass.bundle import export_onnx
    from elvmass.experiments.final import train_bundle

    chosen = _check_preset(preset, inputs, seed)
    if not 0 <= calibration_fraction < 0.5:
        fail(f"--calibration-fraction must be between 0 and 0.5, got {calibration_fraction}")
    study_results = None
    if study_dir is not None:
        import json

        try:
            study_results = json.loads((study_dir / "results.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            fail(f"{study_dir / 'results.json'}: cannot read the study results ({exc})")
    try:
        with atomic_dir(out) as tmp:  # a bundle is complete (weights, ONNX, hashes) or the old one stays
            path = train_bundle(cohort, tmp, chosen, sex_specific=sex_specific, models=_model_names(models),
                                cache_dir=cache_dir, progress=not quiet, log=None if quiet else _log,
                                device=_check_device(device), calibration_fraction=calibration_fraction,
                                study_results=study_results)
            if onnx:
                export_onnx(path)
    except ManifestError as exc:
        fail(str(exc), 2)
    except (ElvmassError, ValueError) as exc:
        fail(str(exc))
    console.print(f"model bundle: {out}", highlight=False)


@app.command("predict")
def predict(
    files: List[Path] = typer.Argument(..., help="ECG files or folders (searched recursively)."),
    model: Path = typer.Option(..., "--model", help="Model bundle folder from `elvmass train`."),
    age: Optional[float] = typer.Option(None, "--age", help="Age in years, 18-110 (overrides the file; flagged override:age_years)."),
    sex: Optional[str] = typer.Option(None, "--sex", help="M or F (a file saying otherwise is refused unless --force-sex)."),
    height_cm: Optional[float] = typer.Option(None, "--height-cm", help="Height in cm, 120-220 (overrides the file)."),
    weight_kg: Optional[float] = typer.Option(None, "--weight-kg", help="Weight in kg, 30-250 (overrides the file)."),
    force_sex: bool = typer.Option(False, "--force-sex", help="Use --sex even for files that state the other sex (flagged override:sex)."),
    fs_hz: Optional[float] = typer.Option(None, "--fs-hz", help="Sampling rate of .npy/.csv array files (they store none)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the predictions as .csv or .parquet."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per file per line (with every flag)."),
    engine: str = typer.Option("torch", "--engine", help="torch, or onnx (needs a bundle trained with --onnx)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Archive scoring: local Dask worker processes."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Archive scoring: address of an existing Dask scheduler."),
    resume: bool = typer.Option(False, "--resume", help="Archive scoring: skip files already in --out (by content hash)."),
    chunk_size: int = typer.Option(200, "--chunk-size", help="Archive scoring: files per Dask task (one Parquet part each)."),
) -> None:
    """Predict LV mass (g), LVMI and LVH for each ECG with the sex-specific model.

    Unreadable and unusable ECGs (too few beats, pacing, noise, flat lead) are not predicted: each is
    named on stderr and the exit status is 1. Implausible --age/--height-cm/--weight-kg exit with 2.
    With ``--out X.parquet`` (or --workers/--scheduler/--resume) a folder is scored as an archive on Dask:
    one Parquet row per file, written chunk by chunk; a failing file is a row with its error.
    """
    from elvmass.bundle import load_bundle
    from elvmass.cohort import check_demographics
    from elvmass.errors import InputValueError
    from elvmass.predict import check_predictions_path, predict_files, summarize_flags, write_predictions

    try:  # the library's one plausibility check (also used by predict_record and the service)
        given = check_demographics(age_years=age, sex=sex, height_cm=height_cm, weight_kg=weight_kg)
        if out is not None:
            check_predictions_path(out)
    except InputValueError as exc:
        fail(str(exc), 2)
    archive = len(files) == 1 and Path(files[0]).is_dir() and not Path(files[0]).with_suffix(".hea").is_file()
    if (archive and out is not None and out.suffix.lower() in (".parquet", ".pq")) or workers is not None or scheduler \
            or resume:  # one folder into Parquet: scored as an archive (chunks on Dask, resumable)
        _score_archive(files, model, out, workers=workers, scheduler=scheduler, resume=resume, chunk_size=chunk_size,
                       demographics={k: v for k, v in given.items() if v is not None}, json_out=json_out, engine=engine)
        return
    try:
        bundle = load_bundle(model, engine=engine)
    except ElvmassError as exc:
        fail(str(exc), 2)
    paths = expand_ecg_paths(files)
    if not paths:
        fail("no ECG files found in the given paths")
    with _progress_bar("predicting", enabled=len(paths) > 1 and not json_out) as cb:
        preds, errors = predict_files(bundle, paths, age_years=given["age_years"], sex=given["sex"],
                                      height_cm=given["height_cm"], weight_kg=given["weight_kg"],
                                      force_sex=force_sex, fs_hz=fs_hz, progress=cb)
    for e in errors:
        report_error(f"{e} (skipped)")
    if out is not None:
        try:
            write_predictions(preds, out)
        except ElvmassError as exc:  # disk full, no permission: one line, the previous file is unchanged
            fail(str(exc))
    if json_out:
        for p in preds:
            print_json_line(p.to_dict())
    else:
        from rich.markup import escape
        from rich.table import Table

        t = Table(title=f"LV mass predictions ({len(preds)} file(s), {len(errors)} skipped)",
                  caption=("flags summarised; every flag: --json"
                           + ("; LVM [low–high]: 90 % interval" if any(p.lvm_g_low is not None for p in preds) else ""))
                  if preds else None)
        t.add_column("file", overflow="fold")
        for col in ("LVM (g)", "LVMI (g/m²)", "LVH"):
            t.add_column(col, justify="right", no_wrap=True)
        t.add_column("model", no_wrap=True)
        t.add_column("flags", overflow="fold")
        for p in preds:  # file names and flags are data, not markup: "[a].xml" prints as written
            # the interval beside the mass (its level in the header; none shown when the bundle has no
            # calibration); the LVH probability is in --json
            lvm = f"{p.lvm_g:.0f}" + ("" if p.lvm_g_low is None else f" [{p.lvm_g_low:.0f}–{p.lvm_g_high:.0f}]")
            t.add_row(escape(Path(p.path).name), lvm, "–" if p.lvmi_g_m2 is None else f"{p.lvmi_g_m2:.0f}",
                      "–" if p.lvh is None else ("yes" if p.lvh else "no"),
                      p.model.removeprefix("elvmassnet_") if p.model != "elvmassnet" else "all",
                      escape(summarize_flags([f for f in p.flags if f != "no_interval"])))
        console.print(t)
        if out is not None:
            console.print(f"written: {escape(str(out))}", highlight=False)
    if errors:  # the good files are predicted and written; the status still says something failed
        raise typer.Exit(1)


def _score_archive(files, model, out, *, workers, scheduler, resume, chunk_size, demographics, json_out, engine):
    """`elvmass predict ARCHIVE_DIR --out scores.parquet [--workers N] [--scheduler ADDR] [--resume]`."""
    from elvmass.archive import score_archive

    if engine != "torch":
        fail("archive scoring runs the torch engine (--engine onnx is for file lists)")
    if out is None or out.suffix.lower() != ".parquet":
        fail("archive scoring writes Parquet: give --out NAME.parquet")
    if len(files) != 1 or not Path(files[0]).is_dir():
        fail("archive scoring takes one folder (ARCHIVE_DIR), searched recursively")
    if workers is not None and workers < 1:
        fail("--workers must be at least 1")
    if chunk_size < 1:
        fail("--chunk-size must be at least 1")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    prog = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]} files/s"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=True,
                    disable=json_out)
    task = prog.add_task("scoring", total=None, rate="–")

    def cb(done: int, total: int, rate: float) -> None:
        prog.update(task, completed=done, total=total, rate=f"{rate:.1f}")

    try:
        with prog:
            summary = score_archive(model, files[0], out, workers=workers, scheduler=scheduler, resume=resume,
                                    chunk_size=chunk_size, demographics=demographics or None, progress=cb)
    except (ElvmassError, OSError) as exc:
        fail(str(exc))
    info = {"out": str(summary.out), "files": summary.n_files, "scored": summary.n_scored, "errors": summary.n_errors,
            "skipped": summary.n_skipped, "copied": summary.n_copied, "elapsed_s": round(summary.elapsed_s, 2),
            "files_per_s": None if summary.n_scored + summary.n_errors == 0 else round(summary.files_per_s, 2)}
    if json_out:
        print_json_line(info)
    else:
        console.print(f"{summary.n_files} file(s): {summary.n_scored} scored, {summary.n_errors} error row(s), "
                      f"{summary.n_skipped} already scored, {summary.n_copied} copied by content hash; "
                      f"{summary.elapsed_s:.1f} s -> {summary.out}", highlight=False)


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the synthetic cohort, manifest and study."),
    n: int = typer.Option(1459, "--n", help="Patients in the synthetic cohort (the paper's internal cohort: 1,459)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic cohort and of the models."),
    preset: str = typer.Option("paper", "--preset", help="quick or paper."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars or log lines."),
    external: bool = typer.Option(False, "--external", help="Instead of the study: train on the internal cohort, "
                                  "validate on a synthetic external site (echo LVM, another cart) and recalibrate."),
    n_external: int = typer.Option(2579, "--n-external", help="With --external: patients at the external site "
                                   "(the paper's NTUH cohort: 2,579)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes for the simulation and the "
                                          "manifest, and trainings run at once, one torch thread each, on a local Dask "
                                          "cluster (default: the usable cores; 1 = all in this process)."),
) -> None:
    """Generate the built-in synthetic cohort, build its manifest and run the sex-specific study
    (with --external: train, validate on a synthetic external site, recalibrate)."""
    import dataclasses

    from elvmass.cohort import build_cohort, write_manifest
    from elvmass.experiments.runner import dask_runner, default_workers
    from elvmass.experiments.study import run_study
    from elvmass.synth import SynthConfig, generate_cohort

    if workers is not None and workers < 1:
        fail("--workers must be at least 1")
    chosen = _check_preset(preset, seed=seed)
    if external:
        from elvmass.cli.validate_cmd import run_external_demo

        run_external_demo(out, n=n, n_external=n_external, seed=seed, preset=chosen, quiet=quiet, workers=workers)
        return
    t0 = time.perf_counter()
    n_workers = workers or default_workers(1)
    try:
        with _progress_bar(f"simulating {n} patients", enabled=not quiet) as cb:
            synth = generate_cohort(SynthConfig(n=n, seed=seed), out / "synth", progress=cb, workers=n_workers)
        with _progress_bar("building the cohort manifest", enabled=not quiet) as cb:
            build = build_cohort(synth.ecg_dir, synth.imaging_csv, progress=cb, workers=n_workers)
        manifest_path = write_manifest(build.manifest, out / "manifest.csv")
        if not quiet:
            _log(f"synthetic cohort: {synth.n_patients} patients, manifest {len(build.manifest)} rows "
                 f"({time.perf_counter() - t0:.0f} s)")
        # the 15 trainings are small: two one-thread trainings at once use two cores better than one
        # two-thread training (the serial demo kept 1.2 of 2 cores busy)
        runner = None
        if n_workers > 1:
            chosen = dataclasses.replace(chosen, train=dataclasses.replace(chosen.train, num_threads=1))
            runner = dask_runner(n_workers=n_workers, log=None if quiet else _log)
        results = run_study(manifest_path, out / "study", chosen, sex_specific=True,
                            progress=not quiet, log=None if quiet else _log, runner=runner)
    except (ElvmassError, ValueError) as exc:
        fail(str(exc))
    _print_summary(results)
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s; report: {out / 'study' / 'report.html'}",
                  highlight=False)


@app.command("model-info")
def model_info(
    model: Path = typer.Argument(..., help="Model bundle folder from `elvmass train`."),
    json_out: bool = typer.Option(False, "--json", help="Print bundle.json's summary as JSON instead of the card."),
) -> None:
    """Print a bundle's model card (intended use, training cohort, performance, uncertainty, limits)."""
    from elvmass.bundle import load_bundle

    try:
        bundle = load_bundle(model)
    except ElvmassError as exc:
        fail(str(exc))
    if json_out:
        cfg = bundle.config
        print_json_line({"path": str(model), "elvmass_version": cfg.get("elvmass_version"), "created": cfg.get("created"),
                         "models": {n: {"family": e.get("family"), "sex": e.get("sex"), "training": e.get("training")}
                                    for n, e in cfg["models"].items()},
                         "training_cohort": cfg.get("training_cohort"), "interval_level": bundle.interval_level
                         if cfg.get("conformal") else None})
        return
    card = bundle.model_card
    if card is None:
        fail(f"{model}: this bundle has no model card (trained by an older elvmass); retrain it with `elvmass train`")
    console.print(card, markup=False, highlight=False)
