"""The paper's experiments in one call: every table's models through one protocol run, resumable.

:func:`run_experiments` takes a cohort manifest and the table keys (:mod:`elvmass.experiments.tables`),
collects the models every table needs (a model in several tables, like the reference eLVMass-Net
of 1a, 1b, 1c, S4 and S5, is one model), runs the protocol
(:func:`elvmass.experiments.protocol.run_protocol`) once over all of them with the same
sorted-every-fifth folds, and writes ``OUT``:

==============================  ================================================================
file                            content
==============================  ================================================================
``experiments.json``            every table (rows with MAE / MAPE mean, SD, fold values and
                                p-values), every model's metrics per fold and by sex, every
                                model's config, each fold's test rows, the tasks run or reused
``table_<key>.csv`` / ``.md``   each table laid out as in the paper
``figure_4.png``                Figure 4, with Table 3 (and ``saliency_cases.csv``: every
                                (model, test case)'s segment x lead-group shares)
``predictions.csv``             the out-of-fold prediction of every model for every case
``report.html``                 the tables and the study figures of the reference model
``tasks/<key>.json``            one finished (model, fold) result each (:class:`TaskStore`);
                                running the same command again reuses them (with
                                ``<key>.safetensors``, the weights of the fold models a table
                                reads after the run: Table 3's)
==============================  ================================================================

``runner`` executes the tasks (:mod:`elvmass.experiments.runner`: serial by default, or Dask);
whatever runs them, the numbers are the same, since every task is seeded by its model and fold.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from elvmass.atomic import atomic_write, atomic_write_text
from elvmass.experiments.protocol import ModelEntry, run_protocol
from elvmass.experiments.runner import TaskStore, cached_runner
from elvmass.experiments.study import (StudyPreset, cohort_summary, default_cache_dir, load_study_manifest,
                                       make_preset, predictions_frame, study_data, summarise)
from elvmass.experiments.tables import DEFAULT_TABLES, REFERENCE, TABLES, ModelsTable, Row, TableContext
from elvmass.jsonable import to_jsonable

EXTRA_TABLE = "models"  # the table of models named with --models


def parse_tables(text: str | Sequence[str]) -> list[str]:
    """``"1a,1b"`` -> ``["1a", "1b"]`` (case-insensitive), each checked against the registry."""
    keys = [k.strip().lower() for k in (text.split(",") if isinstance(text, str) else text) if k.strip()]
    unknown = [k for k in keys if k not in TABLES]
    if unknown:
        raise ValueError(f"unknown table {unknown[0]!r}; choose from {', '.join(TABLES)}")
    if not keys:
        raise ValueError(f"no tables given; choose from {', '.join(TABLES)}")
    return list(dict.fromkeys(keys))


def table_rows(preset: StudyPreset, tables: Sequence[str], models: Sequence[str] = ()) -> dict[str, list[Row]]:
    """Per table, its rows (``models`` adds a table of those registered models against the reference)."""
    out = {k: TABLES[k].rows(preset) for k in tables}
    if models:
        out[EXTRA_TABLE] = ModelsTable(EXTRA_TABLE, "Other models against eLVMass-Net",
                                       [(m, m) for m in models]).rows(preset)
    return out


def unique_entries(rows: dict[str, list[Row]]) -> tuple[list[ModelEntry], dict]:
    """Every model once (first appearance order; the reference first) and the sex-specific pool.
    The same name with two different configs is an error, never a silent overwrite."""
    entries: dict[str, ModelEntry] = {}
    for table_rows_ in rows.values():
        for r in table_rows_:
            prev = entries.get(r.model)
            if prev is None:
                entries[r.model] = r.entry
            elif prev.spec.to_dict() != r.entry.spec.to_dict() or prev.sex != r.entry.sex:
                raise ValueError(f"two different models are both named {r.model!r}")
    ordered = sorted(entries.values(), key=lambda e: e.name != REFERENCE)
    sexed = [e.name for e in ordered if e.sex]
    pools = {f"{REFERENCE}_sex_specific": sexed} if len(sexed) == 2 else {}
    return ordered, pools


def run_experiments(
    manifest,
    out_dir,
    preset: str | StudyPreset = "paper",
    *,
    tables: Sequence[str] = DEFAULT_TABLES,
    models: Sequence[str] = (),
    runner=None,
    device: str = "cpu",
    cache_dir=None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the tables' models under the paper's protocol and write ``out_dir`` (see module doc).

    Returns the ``experiments.json`` content. Finished (model, fold) tasks found in
    ``out_dir/tasks`` are reused, not trained again.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(preset, str):
        preset = make_preset(preset)
    preset = preset.with_progress(False)
    tables = parse_tables(tables)
    df, n_invalid = load_study_manifest(manifest)
    rows = table_rows(preset, tables, models)
    entries, pools = unique_entries(rows)
    keep = sorted({m for k, r in rows.items() if k in TABLES for m in TABLES[k].keep_models(r)})
    if log is not None:
        log(f"manifest: {len(df)} valid rows ({n_invalid} dropped by validation); tables {', '.join(rows)}: "
            f"{len(entries)} models x {preset.n_folds} folds")
    data = study_data(df, [e.spec for e in entries],
                      cache_dir if cache_dir is not None else default_cache_dir(manifest, out_dir))
    for e in entries:  # every view once, here, before any task (and before shipping to workers)
        for sig in e.spec.signals:
            data.views(sig)
    if log is not None:
        log(f"ECG views: {len(data.manifest)} usable, {len(data.dropped)} dropped")

    record: list[dict] = []
    counter = {"done": 0}

    def fold_log(line: str) -> None:
        counter["done"] += 1
        if log is not None:
            log(f"[{counter['done']}] {line}")

    run = cached_runner(TaskStore(out_dir / "tasks"), runner, log=log, record=record)
    result = run_protocol(data, entries, n_folds=preset.n_folds, val_fraction=preset.val_fraction, pools=pools,
                          runner=run, device=device, progress=False, log=fold_log, keep_models=keep)
    summary = summarise(result, preset.n_folds)
    ctx = TableContext(result, summary, preset.n_folds, REFERENCE, data=data, out_dir=out_dir, preset=preset)
    built = {}
    for key, table_rows_ in rows.items():
        table = TABLES.get(key) or ModelsTable(EXTRA_TABLE, "Other models against eLVMass-Net", [])
        built[key] = table.build(ctx, table_rows_)
    from elvmass import __version__

    results = {
        "n": int(len(data.manifest)),
        "n_dropped": {"manifest_validation": int(n_invalid), "ecg": len(data.dropped)},
        "dropped_ecgs": data.dropped[:100],
        "config": {"preset": preset.to_dict(), "tables": list(rows), "device": device, "elvmass_version": __version__,
                   "models": {e.name: e.spec.to_dict() | {"sex": e.sex} for e in entries}, "pools": pools},
        "cohort": cohort_summary(data.manifest),
        "tables": {k: {"title": b.title, "columns": list(b.frame.columns), "rows": b.rows, **b.info}
                   for k, b in built.items()},
        "models": summary,
        "folds": {name: [{"fold": int(s.fold), "n_train": int(len(s.train)), "n_val": int(len(s.val)),
                          "test_rows": s.test.tolist()} for s in splits] for name, splits in result.splits.items()},
        "training": {name: [{k: v for k, v in info.items() if k != "elapsed_s"} for info in infos]
                     for name, infos in result.infos.items()},
        "tasks": record,
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    results = to_jsonable(results)
    write_experiment_outputs(out_dir, results, built, result)
    atomic_write_text(out_dir / "experiments.json", json.dumps(results, indent=1))
    return results


def write_experiment_outputs(out_dir: Path, results: dict, built: dict, result) -> None:
    """table_<key>.{csv,md}, predictions.csv, learning_curves.json and report.html."""
    from elvmass.report.experiments import write_experiments_report
    from elvmass.report.tables import to_markdown

    for key, b in built.items():
        atomic_write_text(out_dir / f"table_{key}.csv", b.frame.to_csv(index=False))
        md = b.markdown or to_markdown(b.frame, b.title) + "".join(f"\n{n}\n" for n in b.notes)
        atomic_write_text(out_dir / f"table_{key}.md", md)
    pred = predictions_frame(result)
    atomic_write(out_dir / "predictions.csv", lambda tmp: pred.to_csv(tmp, index=False))
    atomic_write_text(out_dir / "learning_curves.json", json.dumps(to_jsonable(result.histories)))
    write_experiments_report(results, {k: (b.title, b.frame if b.display is None else b.display, b.notes, b.images)
                                       for k, b in built.items()}, pred,
                             {REFERENCE: result.histories[REFERENCE]} if REFERENCE in result.histories else {},
                             out_dir / "report.html", reference=REFERENCE)
