"""The cross-validated protocol of Pan et al. (2025), for any list of models.

Five folds by sorting the cohort on LV mass and taking every fifth patient
(:func:`elvmass.evaluate.splits.make_splits`); in each iteration one fold is the test set and about
10 % of the rest the validation set; every model is fitted on the training rows only (scalers,
imputation and early stopping included) and predicts its test fold. A :class:`ModelEntry` may be
restricted to one sex: it is trained and tested on that sex with the same folds (the paper's
sex-specific models); ``pools`` combine such entries into one prediction per case.

This module never names a model family: entries hold specs (:mod:`elvmass.models.base`), and each
(model, fold) fit is an independent task (:class:`FoldTask`) seeded by what it is, so a runner may
execute the tasks in any order, in parallel or elsewhere, and the numbers do not change.

    >>> import numpy as np, pandas as pd
    >>> from elvmass.features import CohortData
    >>> from elvmass.models.demographics import DemographicsSpec
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"patient_id": [f"p{i}" for i in range(60)], "sex": ["M", "F"] * 30,
    ...                    "age_years": rng.uniform(30, 80, 60), "height_cm": rng.uniform(150, 190, 60),
    ...                    "weight_kg": rng.uniform(50, 100, 60)})
    >>> df["lvm_g"] = df["weight_kg"] * 1.5 + np.where(df["sex"] == "M", 20, 0)
    >>> res = run_protocol(CohortData.from_frame(df), [ModelEntry(DemographicsSpec())])
    >>> sorted(res.predictions), int(np.isfinite(res.predictions["demographics"]).sum())
    (['demographics'], 60)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from elvmass.evaluate.metrics import mae_g
from elvmass.evaluate.splits import Split, assign_folds, make_splits
from elvmass.models.base import ModelSpec


@dataclass(frozen=True)
class ModelEntry:
    """One model of a study: a spec, optionally restricted to one sex (``"M"`` or ``"F"``)."""

    spec: ModelSpec
    sex: str | None = None
    name_override: str | None = None

    @property
    def name(self) -> str:
        return self.name_override or self.spec.name


@dataclass(frozen=True)
class FoldTask:
    """Fit one entry on one fold's training rows and predict its test rows."""

    entry: ModelEntry
    split: Split
    n_folds: int
    #: also return the fitted model's weights (:attr:`FoldResult.state`), e.g. for saliency after the
    #: run; not part of :attr:`key` (the same fit either way)
    keep_model: bool = False

    @property
    def key(self) -> str:
        """What the task is (model config and fold), e.g. for caching finished tasks on disk."""
        import hashlib
        import json

        payload = json.dumps({"entry": self.entry.spec.to_dict(), "sex": self.entry.sex, "name": self.entry.name,
                              "fold": int(self.split.fold), "n_folds": self.n_folds,
                              "rows": [self.split.train.tolist(), self.split.val.tolist(), self.split.test.tolist()]},
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]


@dataclass
class FoldResult:
    """Out-of-fold predictions of one task (grams, aligned with ``test_rows``)."""

    name: str
    fold: int
    test_rows: np.ndarray
    lvm_g: np.ndarray
    history: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    #: ``fitted.state()`` (weight arrays, JSON-able meta) when the task asked to keep its model
    state: tuple | None = None


@dataclass
class ProtocolResult:
    """Out-of-fold predictions and learning curves of every model, before summarising."""

    manifest: pd.DataFrame
    folds: np.ndarray
    predictions: dict[str, np.ndarray]  # model -> (N,) LVM g (NaN where the model does not apply)
    histories: dict[str, list[list[dict]]] = field(default_factory=dict)  # model -> per fold epochs
    splits: dict[str, list[Split]] = field(default_factory=dict)
    infos: dict[str, list[dict]] = field(default_factory=dict)
    sexes: dict[str, str | None] = field(default_factory=dict)  # model -> the sex it is restricted to
    #: (model, fold) -> (weights, meta) of the models run with ``keep_models`` (see :meth:`fitted`)
    states: dict[tuple[str, int], tuple] = field(default_factory=dict)
    specs: dict[str, ModelSpec] = field(default_factory=dict)

    def fitted(self, name: str) -> list[tuple[str, int, object, np.ndarray]]:
        """``(name, fold, fitted model, test rows)`` per fold of a model run with ``keep_models``
        (the form :func:`elvmass.explain.fold_saliency` takes), rebuilt from the kept weights."""
        spec = self.specs[name]
        out = []
        for s in self.splits[name]:
            arrays, meta = self.states[(name, int(s.fold))]
            out.append((name, int(s.fold), type(spec).load_fitted(spec, arrays, meta), np.asarray(s.test)))
        return out


def run_fold_task(data, task: FoldTask, *, device: str = "cpu", progress: bool = False,
                  on_fitted: Callable[[FoldTask, object], None] | None = None) -> FoldResult:
    """Fit ``task.entry`` on its split and predict the test rows (one independent, seeded unit of work).
    ``on_fitted(task, fitted)`` sees the fitted model before it is dropped (e.g. for saliency)."""
    t0 = time.perf_counter()
    s = task.split
    label = f"{task.entry.name} fold {s.fold + 1}/{task.n_folds}"
    fitted = task.entry.spec.fit(data, s, device=device, progress=progress, label=label)
    pred = np.asarray(fitted.predict(data, s.test), dtype=float)
    if on_fitted is not None:
        on_fitted(task, fitted)
    state = fitted.state() if task.keep_model else None
    return FoldResult(task.entry.name, int(s.fold), np.asarray(s.test), pred, list(getattr(fitted, "history", []) or []),
                      dict(getattr(fitted, "info", {}) or {}), time.perf_counter() - t0, state)


def serial_runner(data, tasks: Sequence[FoldTask], *, device: str = "cpu", progress: bool = False,
                  on_result: Callable[[FoldTask, FoldResult], None] | None = None,
                  on_fitted: Callable[[FoldTask, object], None] | None = None) -> list[FoldResult]:
    """Run the tasks one after another in this process (the default runner); ``on_fitted`` as in
    :func:`run_fold_task` (``functools.partial(serial_runner, on_fitted=...)`` as a protocol runner)."""
    out = []
    for t in tasks:
        r = run_fold_task(data, t, device=device, progress=progress, on_fitted=on_fitted)
        if on_result is not None:
            on_result(t, r)
        out.append(r)
    return out


def fold_tasks(data, entries: Sequence[ModelEntry], n_folds: int = 5, val_fraction: float = 0.1,
               keep_models: Collection[str] = ()) -> list[FoldTask]:
    """Every (entry, fold) task of the protocol, entries in order, folds in order (those of the entries
    named in ``keep_models`` return their weights)."""
    df = data.manifest
    if len(df) < n_folds * 4:
        raise ValueError(f"the cohort has {len(df)} usable cases; the {n_folds}-fold protocol needs at least {n_folds * 4}")
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique in one study, got {names}")
    tasks = []
    for e in entries:
        splits = make_splits(df, n_folds, val_fraction, sex=e.sex)
        if any(len(s.train) < 4 or len(s.val) < 1 or len(s.test) < 1 for s in splits):
            raise ValueError(f"{e.name}: too few cases in some fold for training/validation/testing")
        tasks += [FoldTask(e, s, n_folds, e.name in keep_models) for s in splits]
    return tasks


def fold_log_line(task: FoldTask, res: FoldResult, y_g: np.ndarray) -> str:
    """One line per finished task: its fold MAE and time (plus best epoch / validation MAE when known)."""
    extra = ""
    if "best_epoch" in res.info:
        extra = f"best epoch {res.info['best_epoch']}, val MAE {res.info.get('val_mae_g', float('nan')):.1f} g, "
    return (f"{res.name} fold {res.fold + 1}/{task.n_folds}: {extra}test MAE {mae_g(y_g[res.test_rows], res.lvm_g):.1f} g "
            f"({res.elapsed_s:.0f} s)")


def run_protocol(
    data,
    entries: Sequence[ModelEntry],
    *,
    n_folds: int = 5,
    val_fraction: float = 0.1,
    pools: dict[str, Sequence[str]] | None = None,
    runner=None,
    device: str = "cpu",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    keep_models: Collection[str] = (),
) -> ProtocolResult:
    """Cross-validate every entry on ``data`` (:class:`elvmass.features.CohortData`).

    ``pools`` maps a new name to entries (typically one per sex) whose out-of-fold predictions are
    combined, first finite value wins. ``runner(data, tasks, device=, progress=, on_result=)`` executes
    the tasks (default :func:`serial_runner`); ``log(str)`` gets one line per finished task.
    ``keep_models``: entry names whose fold models are kept (:attr:`ProtocolResult.states`,
    :meth:`ProtocolResult.fitted`).
    """
    df = data.manifest
    y_g = data.lvm_g
    tasks = fold_tasks(data, entries, n_folds, val_fraction, keep_models)

    def on_result(task, res):
        if log is not None:
            log(fold_log_line(task, res, y_g))

    run = runner or serial_runner
    results = run(data, tasks, device=device, progress=progress, on_result=on_result)
    by_task = {(r.name, r.fold): r for r in results}
    preds, hists, splits, infos, states = {}, {}, {}, {}, {}
    sexes = {e.name: e.sex for e in entries}
    for e in entries:
        out = np.full(len(df), np.nan)
        mine = [t for t in tasks if t.entry.name == e.name]
        for t in mine:
            r = by_task[(e.name, int(t.split.fold))]
            out[r.test_rows] = r.lvm_g
        preds[e.name] = out
        curves = [by_task[(e.name, int(t.split.fold))].history for t in mine]
        if any(curves):  # models without a learning curve (trees, regressions) have none to show
            hists[e.name] = curves
        infos[e.name] = [by_task[(e.name, int(t.split.fold))].info for t in mine]
        splits[e.name] = [t.split for t in mine]
        for t in mine:
            st = by_task[(e.name, int(t.split.fold))].state
            if t.keep_model and st is not None:
                states[(e.name, int(t.split.fold))] = st
    for pool, members in (pools or {}).items():
        combined = np.full(len(df), np.nan)
        for m in members:
            combined = np.where(np.isfinite(combined), combined, preds[m])
        preds[pool] = combined
    return ProtocolResult(df, assign_folds(df, n_folds), preds, hists, splits, infos, sexes, states,
                          {e.name: e.spec for e in entries})
