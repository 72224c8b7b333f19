"""`elvmass experiments`: the paper's tables through the CLI on a small generated cohort.

The cohort comes from the built-in generator (synthetic MUSE XML + imaging CSV -> `elvmass cohort`
manifest). The runs use ``--preset quick`` with ``--epochs 3 --threads 1`` so the ten models x five
folds train in a few minutes on a loaded 2-core machine: the numbers show the pipeline, not accuracy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from elvmass.cli import app

N_PATIENTS = 70
FAST = ["--preset", "quick", "--epochs", "3", "--threads", "1"]
SRC = Path(__file__).resolve().parents[1] / "src"


# ------------------------------------------------------------------------------------------------
# fast: the random crop is synchronized and of the asked length
# ------------------------------------------------------------------------------------------------


def test_random_crop_is_synchronized_across_leads():
    from elvmass.models.elvmassnet_spec import RandomCrop

    fs, n_t = 100.0, 1000
    t = torch.arange(n_t, dtype=torch.float32)
    # lead c of case b holds 10000 b + 1000 c + t: a crop shows which samples it took from each lead
    x = torch.stack([torch.stack([10000.0 * b + 1000.0 * c + t for c in range(12)]) for b in range(6)])
    crop = RandomCrop(2.0, 4.0).augmenter(fs)
    gen = torch.Generator().manual_seed(3)
    lengths = set()
    for _ in range(20):
        y = crop(x, gen)
        n = y.shape[-1]
        lengths.add(n)
        assert 200 <= n <= 400 and y.shape[:2] == (6, 12)
        start = y[:, 0, 0] - 10000.0 * torch.arange(6)  # each case's start sample
        for c in range(12):  # the same samples from every lead, consecutive
            expect = 10000.0 * torch.arange(6)[:, None] + 1000.0 * c + start[:, None] + torch.arange(n)[None, :]
            assert torch.equal(y[:, c], expect)
    assert len(lengths) > 5  # a fresh length per batch


def test_table_rows_share_the_reference_and_variants_differ_only_where_asked():
    from elvmass.experiments.experiments import table_rows, unique_entries
    from elvmass.experiments.study import make_preset

    preset = make_preset("quick")
    rows = table_rows(preset, ["1a", "1b", "1c", "s4", "s5"])
    entries, pools = unique_entries(rows)
    names = [e.name for e in entries]
    assert names[0] == "elvmassnet" and len(names) == len(set(names)) == 10
    assert pools == {"elvmassnet_sex_specific": ["elvmassnet_male", "elvmassnet_female"]}
    by = {e.name: e.spec for e in entries}
    ref = by["elvmassnet"]
    assert by["view_full"].signal.view == "full" and by["view_full"].crop is None
    assert by["view_random_crop"].signal == by["view_full"].signal and by["view_random_crop"].crop is not None
    assert by["grouping_anatomical"].net.lead_groups == ((6, 7, 8, 9), (0, 4, 10, 11), (1, 2, 5), (3,))
    assert by["grouping_none"].net.lead_groups == (tuple(range(12)),)
    assert by["inputs_ecg"].net.demographic_inputs == () == by["inputs_ecg"].net.param_inputs
    assert by["inputs_ecg"].signal == ref.signal and by["inputs_ecg"].train == ref.train


def test_task_store_keeps_fold_model_weights_and_refuses_a_task_without_them(tmp_path):
    """A task that keeps its model is reused only with its weights (safetensors beside the JSON); the
    same task without keep_model is reused from the JSON alone."""
    from elvmass.evaluate.splits import Split
    from elvmass.experiments.protocol import FoldResult, FoldTask, ModelEntry
    from elvmass.experiments.runner import TaskStore
    from elvmass.models.demographics import DemographicsSpec

    split = Split(0, np.array([1, 2]), np.array([3]), np.array([0]))
    task = FoldTask(ModelEntry(DemographicsSpec()), split, 5, keep_model=True)
    plain = FoldTask(ModelEntry(DemographicsSpec()), split, 5)
    assert task.key == plain.key  # keeping the weights is not another task
    w = {"conv.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}
    store = TaskStore(tmp_path)
    store.save(task, FoldResult("demographics", 0, np.array([0]), np.array([101.5]), state=(w, {"scaler": {"a": 1}})))
    got = store.load(task)
    np.testing.assert_array_equal(got.state[0]["conv.weight"], w["conv.weight"])
    assert got.state[1] == {"scaler": {"a": 1}} and got.lvm_g.tolist() == [101.5]
    assert store.load(plain).state is None
    store.weights_path(task).write_bytes(store.weights_path(task).read_bytes()[:20])  # truncated
    assert store.load(task) is None and store.load(plain) is not None
    store.weights_path(task).unlink()
    assert store.load(task) is None


# ------------------------------------------------------------------------------------------------
# slow: the CLI end to end
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from elvmass.cohort import build_cohort, write_manifest
    from elvmass.synth import SynthConfig, generate_cohort

    root = tmp_path_factory.mktemp("exp")
    synth = generate_cohort(SynthConfig(n=N_PATIENTS, seed=5), root / "synth")
    build = build_cohort(synth.ecg_dir, synth.imaging_csv)
    return root, write_manifest(build.manifest, root / "manifest.csv")


def _cli(args):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return res


def _numbers(results: dict) -> dict:
    """What must not depend on how the tasks were run: everything but times and the task log."""
    return {k: v for k, v in results.items() if k not in ("elapsed_s", "tasks")}


@pytest.fixture(scope="module")
def serial_run(cohort):
    root, manifest = cohort
    out = root / "serial"
    _cli(["experiments", "--cohort", str(manifest), "--out", str(out), *FAST, "--workers", "0",
          "--cache-dir", str(root / "cache"), "--quiet"])
    return out, json.loads((out / "experiments.json").read_text())


@pytest.mark.slow
def test_every_table_laid_out_as_in_the_paper(serial_run):
    out, res = serial_run
    layouts = {
        "1a": ("Input view", ["Full 10-s ECG", "Random crop", "Single beat (eLVMass-Net)"]),
        "1b": ("Lead grouping", ["None", "Anatomical", "Electrical (eLVMass-Net)"]),
        "1c": ("Inputs", ["ECG", "ECG + parameters", "ECG + demographics", "All (eLVMass-Net)"]),
    }
    for key, (first, labels) in layouts.items():
        t = pd.read_csv(out / f"table_{key}.csv", dtype=str, keep_default_na=False)
        assert list(t.columns) == [first, "MAE (g)", "MAPE (%)", "p (MAE)", "p (MAPE)", "model"]
        assert t[first].tolist() == labels
        ref = t[t["model"] == "elvmassnet"]
        assert len(ref) == 1 and ref.iloc[0]["p (MAE)"] == "—" and ref.iloc[0]["p (MAPE)"] == "—"
        assert (t.loc[t["model"] != "elvmassnet", "p (MAE)"] != "—").all()
        assert t["MAE (g)"].str.fullmatch(r"\d+\.\d ± \d+\.\d").all()
        assert (out / f"table_{key}.md").read_text().startswith("### Table 1(")
        for row in res["tables"][key]["rows"]:
            for metric in ("mae_g", "mape_pct"):
                assert len(row[metric]["folds"]) == 5
                assert row[metric]["mean"] == pytest.approx(np.mean(row[metric]["folds"]))
                assert row[metric]["sd"] == pytest.approx(np.std(row[metric]["folds"], ddof=1))
            assert (row["p_mae"] is None) == row["reference"]
    s4 = pd.read_csv(out / "table_s4.csv", dtype=str, keep_default_na=False)
    assert s4["Population"].tolist() == ["male", "male", "female", "female"]
    assert s4["model"].tolist() == ["elvmassnet", "elvmassnet_male", "elvmassnet", "elvmassnet_female"]
    s5 = pd.read_csv(out / "table_s5.csv", dtype=str, keep_default_na=False)
    assert list(s5.columns) == ["Population", "Model", "c-statistic", "p (DeLong)", "Accuracy", "Sensitivity",
                                "Specificity", "PPV", "F1", "model"]
    assert s5.loc[s5["model"] == "elvmassnet", "p (DeLong)"].tolist() == ["—", "—"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "Table 1(b). Lead grouping" in html and "Table S5" in html
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == res["n"]
    for name in res["config"]["models"]:
        assert f"{name}_lvm_g" in pred.columns


@pytest.mark.slow
def test_same_test_folds_for_every_model_and_reference_trained_once(serial_run):
    out, res = serial_run
    folds, models = res["folds"], res["config"]["models"]
    manifest_sex = pd.read_csv(out / "predictions.csv")["sex"].to_numpy(object)
    ref = [set(f["test_rows"]) for f in folds["elvmassnet"]]
    assert sorted(set().union(*ref)) == list(range(res["n"]))  # the folds partition the cohort
    for name, cfg in models.items():
        got = [set(f["test_rows"]) for f in folds[name]]
        if cfg["sex"] is None:
            assert got == ref, name
        else:  # a one-sex model is tested on its sex's part of the same folds
            assert got == [{i for i in r if manifest_sex[i] == cfg["sex"]} for r in ref], name
    tasks = res["tasks"]
    assert len(tasks) == 5 * len(models) == 50
    assert len({t["key"] for t in tasks}) == len(tasks)
    assert sorted(t["fold"] for t in tasks if t["model"] == "elvmassnet") == [0, 1, 2, 3, 4]
    assert not any(t["reused"] for t in tasks)
    assert len(list((out / "tasks").glob("*.json"))) == 50


@pytest.mark.slow
def test_two_dask_workers_give_the_serial_numbers(cohort, serial_run):
    root, manifest = cohort
    out = root / "dask"
    _cli(["experiments", "--cohort", str(manifest), "--out", str(out), *FAST, "--workers", "2",
          "--cache-dir", str(root / "cache"), "--quiet"])
    res = json.loads((out / "experiments.json").read_text())
    assert _numbers(res) == _numbers(serial_run[1])
    assert len(res["tasks"]) == 50 and not any(t["reused"] for t in res["tasks"])


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_numbers(cohort, serial_run):
    root, manifest = cohort
    out = root / "resume"
    cmd = [sys.executable, "-m", "elvmass", "experiments", "--cohort", str(manifest), "--out", str(out), *FAST,
           "--workers", "0", "--cache-dir", str(root / "cache"), "--tables", "1b", "--quiet"]
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while len(list((out / "tasks").glob("*.json"))) < 4 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    finished = {p.stem for p in (out / "tasks").glob("*.json")}
    assert 4 <= len(finished) < 15, "the run should have been killed part-way"
    before = {p.stem: p.stat().st_mtime_ns for p in (out / "tasks").glob("*.json")}
    _cli(["experiments", "--cohort", str(manifest), "--out", str(out), *FAST, "--workers", "0",
          "--cache-dir", str(root / "cache"), "--tables", "1b", "--quiet"])
    res = json.loads((out / "experiments.json").read_text())
    assert {t["key"] for t in res["tasks"] if t["reused"]} == finished
    assert {p.stem: p.stat().st_mtime_ns for p in (out / "tasks").glob("*.json") if p.stem in before} == before
    full = serial_run[1]
    assert res["tables"]["1b"] == full["tables"]["1b"]
    for name in ("elvmassnet", "grouping_none", "grouping_anatomical"):
        assert res["models"][name] == full["models"][name]


# ------------------------------------------------------------------------------------------------
# a new model family, defined here, runs through study and experiments with no protocol change
# ------------------------------------------------------------------------------------------------

CRITERIA = ("sokolow_lyon_mv", "cornell_voltage_mv")


def _criteria_features(data, rows, signal):
    an = data.analyses(signal)
    x = np.array([[float(an[i].criteria.get(c, np.nan)) for c in CRITERIA] for i in rows], float)
    sex = data.scalars["sex_male"].to_numpy(float)[rows]
    return np.column_stack([np.nan_to_num(x), np.nan_to_num(sex, nan=0.5)])


def _register_ridge():
    from elvmass.models.base import FittedModel, ModelSpec, register
    from elvmass.models.registry import register_recipe
    from elvmass.signal.config import SignalConfig

    @register
    @dataclass(frozen=True)
    class RidgeCriteriaSpec(ModelSpec):
        family = "test_ridge_criteria"
        alpha: float = 1.0

        @property
        def signals(self):
            return (SignalConfig(view="single_beat", out_fs_hz=100.0, seed=self.seed),)

        def fit(self, data, split, **kw):
            from sklearn.linear_model import Ridge

            x = _criteria_features(data, split.train, self.signals[0])
            return RidgeFitted(self, Ridge(alpha=self.alpha).fit(x, data.lvm_g[split.train]))

    class RidgeFitted(FittedModel):
        def __init__(self, spec, model):
            self.spec, self.model = spec, model

        def predict(self, data, rows):
            return self.model.predict(_criteria_features(data, rows, self.spec.signals[0]))

    register_recipe("test_ridge_criteria")(lambda preset: RidgeCriteriaSpec(name="test_ridge_criteria", seed=preset.seed))
    return RidgeCriteriaSpec


@pytest.mark.slow
def test_new_family_runs_through_study_and_experiments(cohort, serial_run, tmp_path):
    from sklearn.linear_model import Ridge

    from elvmass.evaluate.splits import make_splits
    from elvmass.experiments.study import load_study_manifest, run_study, make_preset, study_data

    root, manifest = cohort
    spec_cls = _register_ridge()
    # study: the library call `elvmass study --models` makes (quick preset, shortened for the loaded machine)
    preset = make_preset("quick", epochs=3, num_threads=1)
    res = run_study(manifest, tmp_path / "study", preset, models=["test_ridge_criteria"], cache_dir=root / "cache",
                    progress=False)
    assert "test_ridge_criteria" in res["models"]
    assert {("test_ridge_criteria", "elvmassnet", "mae_g")} <= {(c["a"], c["b"], c["metric"]) for c in res["comparisons"]}
    # experiments, through the CLI, reusing the serial run's tasks: only the new model trains
    out = tmp_path / "exp"
    shutil.copytree(serial_run[0] / "tasks", out / "tasks")
    _cli(["experiments", "--cohort", str(manifest), "--out", str(out), *FAST, "--workers", "0", "--tables", "1b",
          "--models", "test_ridge_criteria", "--cache-dir", str(root / "cache"), "--quiet"])
    exp = json.loads((out / "experiments.json").read_text())
    assert [t["model"] for t in exp["tasks"] if not t["reused"]] == ["test_ridge_criteria"] * 5
    table = pd.read_csv(out / "table_models.csv", dtype=str, keep_default_na=False)
    assert table["model"].tolist() == ["elvmassnet", "test_ridge_criteria"]
    # its out-of-fold predictions are sklearn's Ridge fitted on each fold's training rows
    df, _ = load_study_manifest(manifest)
    data = study_data(df, [spec_cls()], root / "cache")
    pred = pd.read_csv(out / "predictions.csv")["test_ridge_criteria_lvm_g"].to_numpy(float)
    for s in make_splits(data.manifest, 5, 0.1):
        sig = spec_cls().signals[0]
        m = Ridge(alpha=1.0).fit(_criteria_features(data, s.train, sig), data.lvm_g[s.train])
        np.testing.assert_allclose(pred[s.test], m.predict(_criteria_features(data, s.test, sig)), atol=0.006)
