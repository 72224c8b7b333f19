"""Saliency (elvmass.explain): known-answer tests on generated beats with known fiducials, the
model-randomisation sanity check (Adebayo et al. 2018), Table 3, and `elvmass explain` on real GE MUSE
files. Numbers from generated and synthetic data show that the pipeline works, not what the model
sees in patients."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from elvmass.cohort import add_derived_columns
from elvmass.evaluate.splits import Split
from elvmass.experiments.study import make_preset
from elvmass.explain import (SEGMENTS, fold_saliency, gradient_saliency, masks_from_fiducials, saliency_table,
                             segment_shares, write_table_3)
from elvmass.features import PARAM_INPUTS, CohortData
from elvmass.models.elvmassnet_spec import ElvmassNetSpec

N = 240
#: fiducials of every generated beat (ms from the window start; the window is -350 .. +550 ms around R)
FID_MS = {"p_on": 200.0, "qrs_on": 310.0, "qrs_off": 400.0, "t_off": 660.0}


def _gauss(t_ms, centre, sd):
    return np.exp(-0.5 * ((t_ms - centre) / sd) ** 2)


def _beats(target: str, seed: int = 0):
    """N beats: P (centre 255 ms), QRS (355 ms, sd 12 ms), T (530 ms, sd 35 ms), each lead's QRS and T
    amplitude drawn at random; LVM depends only on the QRS amplitude of V1-V3 (``qrs_v1v3``) or only on
    the T amplitude of the limb leads (``t_limb``)."""
    preset = make_preset("quick", inputs="ecg", seed=seed, epochs=25, patience=25)
    sig = preset.signal
    L = sig.view_length
    t_ms = np.arange(L) * 1000.0 / sig.out_fs_hz
    rng = np.random.default_rng(seed)
    qrs_amp = rng.uniform(0.5, 1.5, (N, 12))
    t_amp = rng.uniform(0.1, 0.5, (N, 12))
    if target == "qrs_v1v3":
        drive = qrs_amp[:, 6:9].mean(axis=1)
        lvm = 60.0 + 120.0 * drive
    else:  # one T amplitude shared by the limb leads (a strong, learnable signal), precordial T random
        drive = rng.uniform(0.1, 0.9, N)
        t_amp[:, 0:6] = drive[:, None]
        lvm = 60.0 + 200.0 * drive
    views = (0.1 * _gauss(t_ms, 255, 20)[None, None, :]
             + qrs_amp[:, :, None] * _gauss(t_ms, 355, 12)[None, None, :]
             + t_amp[:, :, None] * _gauss(t_ms, 530, 35)[None, None, :]
             + rng.normal(0, 0.01, (N, 12, L)))
    df = pd.DataFrame({"patient_id": [f"p{i}" for i in range(N)], "ecg_path": [f"e{i}.xml" for i in range(N)],
                       "lvm_g": lvm, "sex": np.where(np.arange(N) % 2 == 0, "M", "F"), "age_years": 60.0,
                       "height_cm": 170.0, "weight_kg": 75.0})
    measured = pd.DataFrame({k: np.full(N, 90.0 if k == "qrs_ms" else 40.0) for k in PARAM_INPUTS})
    data = CohortData.from_views(add_derived_columns(df), sig, views.astype(np.float32), measured)
    idx = np.arange(N)
    split = Split(0, idx[:180], idx[180:210], idx[210:])
    spec = ElvmassNetSpec(name="ka", seed=seed, signal=sig, net=preset.net, train=preset.train)
    fitted = spec.fit(data, split)
    masks = masks_from_fiducials(FID_MS, L, sig.out_fs_hz)
    return data, split, fitted, masks


def _mean_cells(data, split, fitted, masks):
    sal = gradient_saliency(fitted, data, split.test)
    cells = {(s, g): float(np.mean([segment_shares(x, masks).pct[s][g] for x in sal])) for s in SEGMENTS
             for g in ("ll", "pl")}
    return sal, cells


@pytest.fixture(scope="module")
def qrs_model():
    return _beats("qrs_v1v3")


def test_known_answer_qrs_amplitude_of_v1_v3_is_pl_qrs(qrs_model):
    data, split, fitted, masks = qrs_model
    pred = fitted.predict(data, split.test)
    r = np.corrcoef(pred, data.lvm_g[split.test])[0, 1]
    assert r > 0.8, f"the model did not learn the target (r={r:.2f})"
    _, cells = _mean_cells(data, split, fitted, masks)
    ranked = sorted(cells.items(), key=lambda kv: -kv[1])
    print("PL x QRS share:", {f"{s}_{g}": round(v, 1) for (s, g), v in ranked})
    assert ranked[0][0] == ("qrs", "pl")
    assert ranked[0][1] > 1.5 * ranked[1][1]  # a clear margin
    assert math.isclose(sum(cells.values()), 100.0, abs_tol=1e-3)


def test_known_answer_limb_t_amplitude_is_ll_st_t():
    data, split, fitted, masks = _beats("t_limb", seed=1)
    pred = fitted.predict(data, split.test)
    r = np.corrcoef(pred, data.lvm_g[split.test])[0, 1]
    assert r > 0.8, f"the model did not learn the target (r={r:.2f})"
    _, cells = _mean_cells(data, split, fitted, masks)
    ranked = sorted(cells.items(), key=lambda kv: -kv[1])
    print("LL x ST-T share:", {f"{s}_{g}": round(v, 1) for (s, g), v in ranked})
    assert ranked[0][0] == ("st_t", "ll")
    assert ranked[0][1] > 1.5 * ranked[1][1]


def test_randomised_weights_change_the_saliency(qrs_model):
    """Adebayo et al. 2018: a saliency method that survives weight randomisation explains nothing."""
    data, split, fitted, masks = qrs_model
    trained, _ = _mean_cells(data, split, fitted, masks)
    rand = copy.copy(fitted)
    rand.model = copy.deepcopy(fitted.model)
    import torch

    torch.manual_seed(123)
    for m in rand.model.modules():
        if hasattr(m, "reset_parameters") and m is not rand.model:
            m.reset_parameters()
    randomised, cells = _mean_cells(data, split, rand, masks)
    rho = spearmanr(trained.reshape(-1), randomised.reshape(-1)).statistic
    print(f"rank correlation trained vs randomised: {rho:.3f}; randomised PL x QRS {cells[('qrs', 'pl')]:.1f} %")
    assert rho < 0.5


def test_segment_shares_report_missing_boundaries_not_guess():
    sal = np.ones((12, 90))
    masks = masks_from_fiducials({**FID_MS, "t_off": float("nan")}, 90, 100.0)
    s = segment_shares(sal, masks)
    assert set(s.missing) == {"st_t", "tp"}
    assert s.pct["st_t"]["ll"] == 0.0 and s.pct["tp"]["pl"] == 0.0
    # known segments: PR 200-310 ms = 11 samples, QRS 310-400 = 9 of 90 samples, half in each lead group
    assert s.pct["pr"]["ll"] == pytest.approx(100 * 11 * 6 / (90 * 12))
    assert s.pct["qrs"]["pl"] == pytest.approx(100 * 9 * 6 / (90 * 12))
    assert s.unassigned_pct == pytest.approx(100 * 70 / 90)
    assert "segment_missing:st_t" in s.flags


def test_saliency_table_tertiles_and_sampling(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for pop in ("all", "M", "F"):
        for g in rng.uniform(80, 220, 30):
            cell = ("qrs", "pl") if g < 130 else ("st_t", "ll")
            rows.append(dict(population=pop, lvm_g=g, **{f"{s}_{l}": (100.0 if (s, l) == cell else 0.0)
                                                          for s in SEGMENTS for l in ("ll", "pl")}))
    cases = pd.DataFrame(rows)
    cases["missing"] = ""
    cases.loc[cases.index[cases.population == "M"][:4], "missing"] = "pr;tp"  # boundaries not found: reported
    t = saliency_table(cases, seed=4)
    sub = cases[cases.population == "M"]
    lo = np.quantile(sub.lvm_g, 1 / 3)
    assert t.loc[("M", "all", "QRS"), "cut_low_g"] == pytest.approx(lo)
    # T1 = the lowest third: by hand, the share of its cases under 130 g
    t1 = sub[sub.lvm_g <= lo]
    assert t.loc[("M", "all", "QRS"), "T1_PL"] == pytest.approx(100 * (t1.lvm_g < 130).mean())
    assert t.loc[("M", "n5", "QRS"), "n_T1"] == 5
    lost = [(sub.missing != "")[np.where(sub.lvm_g <= lo, 0, np.where(sub.lvm_g <= np.quantile(sub.lvm_g, 2 / 3), 1, 2)) == k]
            .sum() for k in range(3)]
    assert sum(lost) == 4
    for seg in ("PR", "TP", "Total"):
        assert [t.loc[("M", "all", seg), f"missing_T{k + 1}"] for k in range(3)] == lost
    assert t.loc[("M", "all", "QRS"), ["missing_T1", "missing_T2", "missing_T3"]].sum() == 0
    assert t.loc[("F", "all", "Total"), ["missing_T1", "missing_T2", "missing_T3"]].sum() == 0
    assert (t.xs("Total", level="segment")[["T1_LL"]].to_numpy() + t.xs("Total", level="segment")[["T1_PL"]].to_numpy()
            == pytest.approx(100.0))
    assert saliency_table(cases, seed=4).equals(t)  # reproducible by seed
    csv, md = write_table_3(t, tmp_path)
    assert "Tertile cut-offs" in md.read_text() and csv.exists()
    assert f"PR {'/'.join(map(str, lost))}" in md.read_text()  # the not-found boundaries, per tertile


def test_explain_cli_on_real_muse_files(trained_bundle, shared_data, tmp_path):
    from typer.testing import CliRunner

    from elvmass.cli import app

    files = sorted((shared_data / "vendor" / "ge-muse-xml").glob("*.xml"))
    assert files
    bad = tmp_path / "corrupt.xml"
    bad.write_text("<RestingECG><Waveform>not a waveform")
    png = tmp_path / "explain.png"
    res = CliRunner().invoke(app, ["explain", "--model", str(trained_bundle), *map(str, files), str(bad),
                                   "--json", "--plot", str(png)])
    assert res.exit_code != 0
    out_lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert [o["path"] for o in out_lines] == [str(f) for f in files]
    for o in out_lines:
        assert set(o) >= {"path", "lvm_g", "model", "method", "segments", "flags"}
        total = sum(o["segments"][s][g] for s in ("pr", "qrs", "st_t", "tp") for g in ("ll", "pl"))
        assert total + o["unassigned_pct"] == pytest.approx(100.0, abs=0.1)
        assert o["method"] == "gradient" and 30 < o["lvm_g"] < 400
    err = [x for x in res.stderr.splitlines() if "corrupt.xml" in x]
    assert len(err) == 1
    assert png.exists() and png.stat().st_size > 10_000


def test_captum_methods_agree_on_the_known_answer(qrs_model):
    """SmoothGrad and Integrated Gradients (Captum) on the V1-V3 QRS model: same shape, non-negative, and
    PL x QRS is still the largest cell."""
    data, split, fitted, masks = qrs_model
    rows = split.test[:10]
    for method in ("smoothgrad", "integrated_gradients"):
        sal = gradient_saliency(fitted, data, rows, method=method)
        assert sal.shape == (10, 12, data.views(fitted.spec.signal).shape[-1]) and (sal >= 0).all()
        cells = {(s, g): np.mean([segment_shares(x, masks).pct[s][g] for x in sal]) for s in SEGMENTS
                 for g in ("ll", "pl")}
        print(method, "PL x QRS", round(cells[("qrs", "pl")], 1))
        assert max(cells, key=cells.get) == ("qrs", "pl"), method


def test_fold_saliency_table_and_service_dict_on_the_synthetic_cohort(trained_bundle, shared_data, tmp_path):
    """The study path: fold_saliency on real (synthetic-file) ECGs with their own fiducials -> Table 3;
    and saliency_for_record gives the JSON-ready dict the HTTP service sends to its page."""
    from elvmass import read_ecg
    from elvmass.bundle import load_bundle
    from elvmass.experiments.study import load_study_manifest
    from elvmass.explain import saliency_for_record
    from elvmass.features import cohort_data

    bundle = load_bundle(trained_bundle)
    df, _ = load_study_manifest(trained_bundle.parent / "manifest.csv")
    data = cohort_data(df.head(18), bundle.signal_config, cache_dir=trained_bundle.parent / ".elvmass-cache")
    rows = np.arange(len(data))
    fold_models = [(n, 0, bundle.fitted[n], rows) for n in bundle.model_names]
    cases = fold_saliency(data, fold_models)
    assert set(cases.population) >= {"all", "M", "F"} and len(cases) == len(rows) * len(bundle.model_names)
    known = cases[cases.missing == ""]
    assert len(known) > 0.8 * len(cases)  # synthetic ECGs: fiducials found in almost every beat
    cells = known[[f"{s}_{g}" for s in SEGMENTS for g in ("ll", "pl")]].sum(axis=1) + known.unassigned_pct
    np.testing.assert_allclose(cells, 100.0, atol=1e-6)
    table = saliency_table(cases, per_tertile=2, seed=0)
    csv, md = write_table_3(table, tmp_path)
    assert "population M" in md.read_text()
    from elvmass.explain import figure_4

    png = figure_4(data, fold_models, cases, tmp_path / "figure_4.png")
    assert png.stat().st_size > 10_000

    rec = read_ecg(sorted((shared_data / "vendor" / "ge-muse-xml").glob("*.xml"))[0])
    s = saliency_for_record(bundle, rec, model="elvmassnet")
    json.dumps(s)  # plain JSON, as the service sends it
    assert np.asarray(s["lead_time"]).shape == (12, bundle.signal_config.view_length)
    assert sum(s["segment_shares"].values()) == pytest.approx(1.0, abs=0.01)


def test_protocol_hands_fold_models_to_fold_saliency(qrs_model):
    """run_fold_task's on_fitted hook: the fold model the protocol would drop reaches fold_saliency,
    which explains it on that fold's own test rows."""
    from elvmass.experiments.protocol import ModelEntry, fold_tasks, run_fold_task
    from elvmass.explain import FoldModels

    data, _, fitted, masks = qrs_model
    task = fold_tasks(data, [ModelEntry(fitted.spec)], n_folds=5)[0]
    got = FoldModels()
    res = run_fold_task(data, task, on_fitted=got.on_fitted)
    assert len(got) == 1 and got[0][0] == res.name
    np.testing.assert_array_equal(got[0][3], res.test_rows)
    np.testing.assert_allclose(got[0][2].predict(data, res.test_rows), res.lvm_g)
    cases = fold_saliency(data, got, masks=masks)
    assert sorted(cases.row) == sorted(res.test_rows.tolist())
    mean = cases[[f"{s}_{g}" for s in SEGMENTS for g in ("ll", "pl")]].mean()
    assert mean.idxmax() == "qrs_pl"


@pytest.mark.slow
def test_study_saliency_writes_table_3(trained_bundle, tmp_path):
    """`elvmass study --saliency` (quick preset, sex-specific): table_3.{csv,md} from every network fold
    model on its own out-of-fold cases, for the all, male and female populations."""
    from typer.testing import CliRunner

    from elvmass.cli import app

    out = tmp_path / "study"
    res = CliRunner().invoke(app, ["study", "--cohort", str(trained_bundle.parent / "manifest.csv"), "--out", str(out),
                                   "--preset", "quick", "--sex-specific", "--saliency", "--quiet"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(out / "table_3.csv", index_col=[0, 1, 2])
    assert set(t.index.get_level_values(0)) == {"all", "M", "F"}
    cases = pd.read_csv(out / "saliency_cases.csv")
    results = json.loads((out / "results.json").read_text())
    assert len(cases[cases.population == "all"]) == results["n"]  # every out-of-fold case once
    assert "saliency_s" in results
    assert (out / "figure_4.png").stat().st_size > 10_000
    html = (out / "report.html").read_text()
    assert "Table 3. Saliency by ECG segment" in html and "<h2>Figure 4." in html
    assert html.count("data:image/png;base64,") == 7  # the study's six figures and Figure 4


def test_experiments_table_3_from_the_fold_models(trained_bundle, tmp_path):
    """`elvmass experiments --tables 3` (quick preset, one epoch): Table 3 and Figure 4 from the
    non-sex-specific, male and female fold models on their own test cases, checked against numpy on the
    written cases; the fold models' weights are kept, so a rerun reuses every task (a task whose weights
    were deleted runs again) and gives the same table."""
    from typer.testing import CliRunner

    from elvmass.cli import app

    out = tmp_path / "exp"
    cmd = ["experiments", "--cohort", str(trained_bundle.parent / "manifest.csv"), "--out", str(out), "--tables", "3",
           "--preset", "quick", "--epochs", "1", "--threads", "1", "--workers", "0", "--quiet"]
    res = CliRunner().invoke(app, cmd)
    assert res.exit_code == 0, res.output
    assert "# Table 3: saliency by ECG segment" in res.output
    t = pd.read_csv(out / "table_3.csv")
    assert list(t.columns[:9]) == ["population", "sample", "segment", "T1_LL", "T1_PL", "T2_LL", "T2_PL", "T3_LL", "T3_PL"]
    assert t.groupby(["population", "sample"], sort=False).segment.apply(list).to_dict() == {
        (p, s): ["PR", "QRS", "ST-T", "TP", "Total"] for p in ("all", "M", "F") for s in ("all", "n5")}
    exp = json.loads((out / "experiments.json").read_text())
    cases = pd.read_csv(out / "saliency_cases.csv", keep_default_na=False)
    pred = pd.read_csv(out / "predictions.csv")
    assert exp["tables"]["3"]["n_cases"] == len(cases) == exp["n"] + len(pred)  # all, then M + F: every case twice
    assert cases.groupby("population").row.apply(lambda r: r.is_unique).all()
    assert sorted(cases[cases.population == "M"].row) == sorted(np.flatnonzero(pred.sex.to_numpy() == "M"))
    cells = [f"{s}_{g}" for s in SEGMENTS for g in ("ll", "pl")]
    np.testing.assert_allclose(cases[cells].sum(axis=1) + cases.unassigned_pct, 100.0, atol=0.01)  # per ECG
    tt = t.set_index(["population", "sample", "segment"])
    for pop, y in (("all", pred.lvm_g), ("M", pred.lvm_g[pred.sex == "M"]), ("F", pred.lvm_g[pred.sex == "F"])):
        lo, hi = np.quantile(y, 1 / 3), np.quantile(y, 2 / 3)
        assert tt.loc[(pop, "all", "QRS"), "cut_low_g"] == pytest.approx(lo, abs=0.006)
        assert tt.loc[(pop, "n5", "TP"), "cut_high_g"] == pytest.approx(hi, abs=0.006)
        c = cases[cases.population == pop]
        tert = np.where(c.lvm_g <= lo, 1, np.where(c.lvm_g <= hi, 2, 3))
        for k in (1, 2, 3):
            part = c[tert == k]
            assert tt.loc[(pop, "all", "Total"), f"n_T{k}"] == len(part)
            assert tt.loc[(pop, "n5", "Total"), f"n_T{k}"] == min(5, len(part))
            assert tt.loc[(pop, "all", "QRS"), f"T{k}_PL"] == pytest.approx(part.qrs_pl.mean(), abs=0.01)
            assert tt.loc[(pop, "all", "Total"), f"T{k}_LL"] == pytest.approx(part[cells[::2]].sum(axis=1).mean(), abs=0.01)
            assert tt.loc[(pop, "all", "PR"), f"missing_T{k}"] == part.missing.str.contains("pr").sum()
            assert tt.loc[(pop, "all", "Total"), f"missing_T{k}"] == (part.missing != "").sum()
    md = (out / "table_3.md").read_text()
    assert md.count("Segment boundaries not found") == 6 and md.count("Tertile cut-offs") == 6
    assert (out / "figure_4.png").stat().st_size > 10_000
    html = (out / "report.html").read_text()
    assert "Table 3. Saliency by ECG segment" in html and "<h3>Figure 4." in html
    weights = sorted((out / "tasks").glob("*.safetensors"))
    assert len(weights) == 15  # 3 models x 5 folds
    weights[0].unlink()
    res = CliRunner().invoke(app, cmd)
    assert res.exit_code == 0, res.output
    again = json.loads((out / "experiments.json").read_text())
    assert [t_["key"] for t_ in again["tasks"] if not t_["reused"]] == [weights[0].stem]
    assert pd.read_csv(out / "table_3.csv").equals(t)
