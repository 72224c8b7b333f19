"""The paper's comparators as model families (issue 10): LVM-AI, ECG-AI, the voltage-criteria classifiers
and ``criteria_linear``.

- the criterion classifiers reproduce the hand-checked criterion values of tests/test_signal_criteria.py;
- LVM-AI has the ten convolutional layers and the receptive field its docstring states (the receptive
  field measured here from the network's own gradients, not from the formula);
- every comparator trains and predicts through `elvmass study --models ...` on a small generated cohort
  (slow), and a fitted model survives its bundle state (safetensors arrays + JSON, no pickle).

Numbers on the generated cohort show the pipeline works, not how well the models do on patients.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from elvmass.cli import app
from elvmass.models.criteria import CRITERIA, CriterionClassifier, criterion_positive
from elvmass.models.lvm_ai import LvmAiNet, count_conv_layers, receptive_field
from elvmass.signal import voltage_criteria
from test_signal_criteria import FID, FS, L, bump, lvh_voltage_beat  # the hand-checked beats


def test_criterion_classifiers_reproduce_hand_checked_values():
    men = voltage_criteria(lvh_voltage_beat(), FS, FID, "M")
    values = {name: float(CriterionClassifier(name).values([men])[0]) for name in CRITERIA}
    # tests/test_signal_criteria.py::test_hand_checked_values_men: S(V1) 2.0 + R(V5) 1.6; R(aVL) 1.3 + S(V3) 1.6;
    # x 90 ms; deepest S 2.0 + S(V4) 0.9; Romhilt-Estes 1 point (QRS >= 90 ms)
    assert values["sokolow_lyon"] == pytest.approx(3.6, abs=0.01)
    assert values["cornell_voltage"] == pytest.approx(2.9, abs=0.01)
    assert values["cornell_product"] == pytest.approx(2.9 * 90, abs=1.0)
    assert values["peguero_lo_presti"] == pytest.approx(2.9, abs=0.02)
    assert values["romhilt_estes"] == 1
    calls = {name: CriterionClassifier(name).calls([men], ["M"])[0] for name in CRITERIA}
    assert calls == {"sokolow_lyon": True, "cornell_voltage": True, "cornell_product": True, "peguero_lo_presti": True,
                     "romhilt_estes": False}
    # the sex-specific beat of test_sex_specific_thresholds: Cornell voltage 2.2 mV, negative for men, positive for women
    b = lvh_voltage_beat()
    b[L["aVL"]] = 0.1 + bump(165, 0.6)
    for sex, expected in (("M", False), ("F", True), (None, None)):
        c = voltage_criteria(b, FS, FID, sex)
        assert CriterionClassifier("cornell_voltage").calls([c], [sex]) == [expected]
        assert CriterionClassifier("cornell_product").calls([c], [sex]) == [c["cornell_product_positive"]]
    # the classifier's own cut-offs agree with the signal module's calls at the boundary (3.4 mV: negative)
    assert criterion_positive("sokolow_lyon", 3.4, "M") is False and criterion_positive("sokolow_lyon", 3.5, "F") is True


def test_lvm_ai_layers_and_measured_receptive_field():
    net = LvmAiNet(n_scalars=3, length=1000)
    assert count_conv_layers(net) == 10 and len(net.blocks) == 3
    assert all(len(b.convs) == 3 for b in net.blocks)
    assert receptive_field() == 912  # 9.1 s at 100 Hz
    # measure it: the gradient of one central output of the last block with respect to the input
    net.eval()
    x = torch.randn(1, 12, 2000, dtype=torch.float64, requires_grad=True)
    net = net.double()
    h = torch.nn.functional.silu(net.first(x))
    for i, block in enumerate(net.blocks):
        if i:
            h = torch.nn.functional.max_pool1d(h, net.pool)
        h = block(h)
    h[0, :, h.shape[-1] // 2].sum().backward()
    nz = np.flatnonzero(x.grad.abs().sum(dim=1)[0].numpy() > 0)
    assert nz[-1] - nz[0] + 1 <= receptive_field() and nz[-1] - nz[0] + 1 >= receptive_field() - 16


N_PATIENTS = 60


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory):
    from elvmass.cohort import build_cohort, write_manifest
    from elvmass.synth import SynthConfig, generate_cohort

    root = tmp_path_factory.mktemp("comparators")
    synth = generate_cohort(SynthConfig(n=N_PATIENTS, seed=5), root / "synth")
    build = build_cohort(synth.ecg_dir, synth.imaging_csv)
    return root, write_manifest(build.manifest, root / "manifest.csv")


COMPARATORS = ("lvm_ai_original", "lvm_ai_all", "ecg_ai_original", "ecg_ai_all", "criteria_linear")


@pytest.mark.slow
def test_every_comparator_trains_and_predicts_through_the_study_cli(small_cohort):
    root, manifest = small_cohort
    out = root / "study"
    res = CliRunner().invoke(app, ["study", "--cohort", str(manifest), "--out", str(out), "--preset", "quick",
                                   "--models", "lvm_ai,ecg_ai,criteria_linear", "--cache-dir", str(root / "cache"), "--quiet"])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) >= {"elvmassnet", "demographics", *COMPARATORS}
    import pandas as pd

    pred = pd.read_csv(out / "predictions.csv")
    for name in COMPARATORS:
        m = results["models"][name]
        assert len(m["mae_g"]["folds"]) == 5
        assert 1 < m["mae_g"]["mean"] < 150, (name, m["mae_g"])
    assert len(pred) == results["n"]


@pytest.mark.slow
def test_fitted_comparators_survive_their_bundle_state(small_cohort):
    from elvmass.evaluate.splits import make_splits
    from elvmass.features import cohort_data
    from elvmass.models.base import families, spec_from_dict
    from elvmass.experiments.study import make_preset
    from elvmass.models.registry import build_models

    import pandas as pd

    root, manifest = small_cohort
    df = pd.read_csv(manifest)
    specs = build_models(list(COMPARATORS), make_preset("quick"))
    signals = list(dict.fromkeys(s for spec in specs for s in spec.signals))
    data = cohort_data(df, signals, cache_dir=root / "cache2", base_dir=manifest.parent)
    split = make_splits(data.manifest, 5)[0]
    for spec in specs:
        fitted = spec.fit(data, split)
        pred = fitted.predict(data, split.test)
        assert pred.shape == (len(split.test),) and np.isfinite(pred).all()
        arrays, meta = fitted.state()
        json.dumps(meta)  # JSON-able: no pickle anywhere
        assert all(isinstance(v, np.ndarray) for v in arrays.values())
        again = families()[spec.family].load_fitted(spec_from_dict(spec.to_dict()), arrays, meta)
        np.testing.assert_allclose(again.predict(data, split.test), pred, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# Table 2 and Table S2 of `elvmass experiments`
# ------------------------------------------------------------------------------------------------


def _p(a, b) -> str:
    from scipy.stats import ttest_rel

    p = ttest_rel(a, b).pvalue
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def test_table_2_layout_and_fold_level_p_values():
    """Table 2 as the paper lays it out: per comparator its original-setting and all-features rows, the
    fold-level paired t-test against eLVMass-Net, and between a comparator's two settings (scipy's
    ttest_rel on the same per-fold values gives the expectation)."""
    from elvmass.evaluate.metrics import mean_sd
    from elvmass.experiments.study import make_preset
    from elvmass.experiments.tables import TABLES, TableContext

    table = TABLES["2"]
    rows = table.rows(make_preset("quick"))
    assert [r.model for r in rows] == ["elvmassnet", *COMPARATORS]
    rng = np.random.default_rng(1)
    folds = {r.model: (rng.uniform(10, 30, 5), rng.uniform(8, 25, 5)) for r in rows}
    models = {m: {"n": 100, "mae_g": mean_sd(a), "mape_pct": mean_sd(b)} for m, (a, b) in folds.items()}
    built = table.build(TableContext(None, models, 5), rows)
    t = built.frame
    assert list(t.columns) == ["Model", "Setting", "MAE (g)", "MAPE (%)", "p vs eLVMass-Net (MAE)",
                               "p vs eLVMass-Net (MAPE)", "p original vs all features (MAE)", "model"]
    assert t["Model"].tolist() == ["eLVMass-Net", "LVM-AI", "LVM-AI", "ECG-AI", "ECG-AI", "Voltage criteria (linear)"]
    assert t["Setting"].str.startswith("Original setting").tolist() == [False, True, False, True, False, False]
    assert t.loc[0, "MAE (g)"] == f"{np.mean(folds['elvmassnet'][0]):.1f} ± {np.std(folds['elvmassnet'][0], ddof=1):.1f}"
    ref_mae, ref_mape = folds["elvmassnet"]
    assert t.loc[0, ["p vs eLVMass-Net (MAE)", "p vs eLVMass-Net (MAPE)", "p original vs all features (MAE)"]].tolist() \
        == ["—"] * 3
    for i, name in enumerate(COMPARATORS, start=1):
        assert t.loc[i, "p vs eLVMass-Net (MAE)"] == _p(folds[name][0], ref_mae)
        assert t.loc[i, "p vs eLVMass-Net (MAPE)"] == _p(folds[name][1], ref_mape)
    for orig, all_ in (("lvm_ai_original", "lvm_ai_all"), ("ecg_ai_original", "ecg_ai_all")):
        i = COMPARATORS.index(all_) + 1
        assert t.loc[i, "p original vs all features (MAE)"] == _p(folds[all_][0], folds[orig][0])
        assert t.loc[i - 1, "p original vs all features (MAE)"] == "—"
    assert t.loc[5, "p original vs all features (MAE)"] == "—"  # one setting only
    assert built.rows[2]["p_settings_mape"] == pytest.approx(
        __import__("scipy.stats").stats.ttest_rel(folds["lvm_ai_all"][1], folds["lvm_ai_original"][1]).pvalue)


def test_experiments_table_s2_criteria_and_model(trained_bundle, tmp_path):
    """`elvmass experiments --tables s2` (quick preset, one epoch): the voltage criteria at their published
    cut-offs and eLVMass-Net's predicted LVMI as LVH classifiers, each row's metrics recomputed here from
    the criterion values and predictions.csv."""
    import pandas as pd

    from elvmass.experiments.study import load_study_manifest, make_preset, study_data

    manifest = trained_bundle.parent / "manifest.csv"
    out = tmp_path / "exp"
    res = CliRunner().invoke(app, ["experiments", "--cohort", str(manifest), "--out", str(out), "--tables", "s2",
                                   "--preset", "quick", "--epochs", "1", "--threads", "1", "--workers", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(out / "table_s2.csv", dtype=str, keep_default_na=False).set_index("model")
    assert list(t.index) == ["elvmassnet", *CRITERIA]
    assert list(t.columns) == ["Model / criterion", "Positive if", "n", "c-statistic", "p (DeLong)", "Accuracy",
                               "Sensitivity", "Specificity", "PPV", "F1"]
    assert t.loc["sokolow_lyon", "Positive if"] == ">= 3.5 mV" and t.loc["elvmassnet", "p (DeLong)"] == "—"
    pred = pd.read_csv(out / "predictions.csv")
    lvh = pred["lvh"].astype(bool).to_numpy()

    def check(row, call, value):
        tp, fp = (call & lvh).sum(), (call & ~lvh).sum()
        fn, tn = (~call & lvh).sum(), (~call & ~lvh).sum()
        assert int(row["n"]) == len(call)
        assert row["Sensitivity"] == f"{tp / (tp + fn):.3f}" and row["Specificity"] == f"{tn / (tn + fp):.3f}"
        assert row["Accuracy"] == f"{(tp + tn) / len(call):.3f}"
        pos, neg = value[lvh], value[~lvh]  # c-statistic: P(a positive scores above a negative), ties half
        c = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
        assert row["c-statistic"] == f"{c:.3f}"

    check(t.loc["elvmassnet"], pred["elvmassnet_lvh"].astype(bool).to_numpy(),
          pred["elvmassnet_lvmi_g_m2"].to_numpy() / np.where(pred.sex == "M", 72.0, 55.0))
    df, _ = load_study_manifest(manifest)
    preset = make_preset("quick")
    data = study_data(df, [preset.net_spec()], manifest.parent / ".elvmass-cache")
    sl = np.array([a.criteria["sokolow_lyon_mv"] for a in data.analyses(preset.signal)], float)
    assert np.isfinite(sl).all()
    check(t.loc["sokolow_lyon"], sl >= 3.5, sl)
    md = (out / "table_s2.md").read_text()
    assert "Sokolow-Lyon" in md and "DeLong's p against eLVMass-Net" in md
    assert "Table S2. LVH classification" in (out / "report.html").read_text()


@pytest.mark.slow
def test_experiments_tables_2_and_s2_through_the_cli(small_cohort, tmp_path):
    """`elvmass experiments --tables 2,s2` trains every comparator in the same folds as eLVMass-Net: the
    table's p-values are scipy's paired t-test on the per-fold MAEs in experiments.json, and Table S2 has
    a row for every comparator and every criterion."""
    import pandas as pd

    root, manifest = small_cohort
    out = tmp_path / "exp"
    res = CliRunner().invoke(app, ["experiments", "--cohort", str(manifest), "--out", str(out), "--tables", "2,s2",
                                   "--preset", "quick", "--epochs", "3", "--threads", "1", "--workers", "0",
                                   "--cache-dir", str(root / "cache"), "--quiet"])
    assert res.exit_code == 0, res.output
    exp = json.loads((out / "experiments.json").read_text())
    folds = {name: exp["models"][name]["mae_g"]["folds"] for name in ("elvmassnet", *COMPARATORS)}
    t = pd.read_csv(out / "table_2.csv", dtype=str, keep_default_na=False).set_index("model")
    assert list(t.index) == ["elvmassnet", *COMPARATORS]
    for name in COMPARATORS:
        assert t.loc[name, "p vs eLVMass-Net (MAE)"] == _p(folds[name], folds["elvmassnet"])
    assert t.loc["lvm_ai_all", "p original vs all features (MAE)"] == _p(folds["lvm_ai_all"], folds["lvm_ai_original"])
    s2 = pd.read_csv(out / "table_s2.csv", dtype=str, keep_default_na=False)
    assert s2["model"].tolist() == ["elvmassnet", *COMPARATORS, *CRITERIA]
    html = (out / "report.html").read_text()
    assert "Table 2. Comparators" in html and "Table S2." in html


@pytest.mark.slow
def test_ecg_ai_profiles_computed_once_for_all_folds_on_the_cluster(small_cohort, monkeypatch):
    """ECG-AI's profiles (the segmentation network on every ECG, the costly part of its folds) are computed
    once by the runner before its tasks go out (``ModelSpec.prepare``), in chunks, on the Dask cluster's
    workers, and are the same numbers as computed in this process; the fold tasks then reuse them."""
    import pandas as pd
    from dask.distributed import Client

    from elvmass.evaluate.splits import make_splits
    from elvmass.experiments.protocol import FoldTask, ModelEntry
    from elvmass.experiments.runner import _cluster_map, prepare_specs, shippable
    from elvmass.features import cohort_data
    from elvmass.local_cluster import start_local_cluster
    from elvmass.models import ecg_ai
    from elvmass.models.ecg_ai import PROFILE_SIGNAL, EcgAiSpec, cohort_profiles

    root, manifest = small_cohort
    df = pd.read_csv(manifest)
    data = cohort_data(df, [PROFILE_SIGNAL], cache_dir=root / "cache3", base_dir=manifest.parent)
    here = cohort_profiles(data.subset(np.arange(len(data))))  # a fresh copy, computed in this process
    assert here.shape == (len(data), 525) and np.isfinite(here).mean() > 0.9

    monkeypatch.setattr(ecg_ai, "PROFILE_CHUNK_ROWS", 25)
    splits = make_splits(data.manifest, 5)
    tasks = [FoldTask(ModelEntry(EcgAiSpec(setting=s)), split, 5) for s in ("original", "all") for split in splits]
    chunks_mapped = []

    with start_local_cluster(2) as cluster, Client(cluster) as client:
        on_cluster = _cluster_map(client)

        def recording_map(fn, chunks):
            chunks = list(chunks)
            chunks_mapped.append(len(chunks))
            return on_cluster(fn, chunks)

        prepare_specs(data, tasks, recording_map)
    assert chunks_mapped == [math.ceil(len(data) / 25)]  # once, for ten tasks of two specs
    np.testing.assert_array_equal(data.derived(ecg_ai._profile_key(PROFILE_SIGNAL)), here)
    shipped = shippable(data, tasks)  # what the workers get: the profiles travel along
    np.testing.assert_array_equal(cohort_profiles(shipped), here)
    fold = shipped.subset(splits[0].test)
    np.testing.assert_array_equal(cohort_profiles(fold), here[splits[0].test])
