"""Unit tests of elvmass.features (scalar inputs, FeatureScaler, CohortData), the test selection of
``scripts/mutation features``. Every expected number is worked out by hand in the test (population SDs,
medians of a few values), not recomputed with the code under test."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from elvmass import features as F
from elvmass.signal import SignalConfig


# ---------------------------------------------------------------- plausibility, sex, numbers

@pytest.mark.parametrize("name, value, ok", [
    ("qrs_ms", 40.0, True), ("qrs_ms", 39.99, False), ("qrs_ms", 300.0, True), ("qrs_ms", 300.01, False),
    ("qrs_ms", "95", True), ("qrs_ms", "n/a", False), ("qrs_ms", None, False), ("qrs_ms", math.inf, False),
    ("qrs_ms", math.nan, False), ("p_axis_deg", -180.0, True), ("r_axis_deg", -180.5, False),
    ("t_axis_deg", 360.0, True), ("t_axis_deg", 999.0, False),  # a device's "not measured"
])
def test_plausible_param_limits_are_inclusive(name, value, ok):
    assert F.plausible_param(name, value) is ok


def test_sex_to_male():
    assert F.sex_to_male("M") == 1.0
    assert F.sex_to_male("F") == 0.0
    assert math.isnan(F.sex_to_male("U")) and math.isnan(F.sex_to_male(None))


def test_as_float_matches_to_numeric_coerce():
    assert math.isnan(F._as_float(None))
    assert F._as_float(True) == 1.0 and F._as_float(np.bool_(False)) == 0.0
    assert F._as_float("3.5") == 3.5 and F._as_float(7) == 7.0
    assert math.isnan(F._as_float("abc")) and math.isnan(F._as_float([1, 2]))


# ---------------------------------------------------------------- scalar table

def test_scalar_table_prefers_manifest_params_and_fills_from_measured():
    manifest = pd.DataFrame({"age_years": ["61", "x"], "sex": ["F", "M"], "weight_kg": [70.0, 80.0],
                             "qrs_ms": [100.0, np.nan]}, index=[3, 4])
    measured = pd.DataFrame({"qrs_ms": [80.0, 90.0], "r_axis_deg": [15.0, np.nan]}, index=[5, 6])
    tab = F.scalar_table(manifest, measured)
    assert list(tab.columns) == list(F.SCALAR_COLUMNS)
    assert tab["age_years"].iloc[0] == 61.0 and math.isnan(tab["age_years"].iloc[1])
    assert tab["sex_male"].tolist() == [0.0, 1.0]
    assert tab["height_cm"].isna().all()  # no such manifest column
    assert F.scalar_table(manifest.assign(height_cm=[165, "?"]))["height_cm"].tolist()[0] == 165.0
    assert tab["weight_kg"].tolist() == [70.0, 80.0]
    assert tab["qrs_ms"].tolist() == [100.0, 90.0]  # the manifest's 100 wins; row 2 from measured
    assert tab["r_axis_deg"].iloc[0] == 15.0 and math.isnan(tab["r_axis_deg"].iloc[1])
    assert tab["p_axis_deg"].isna().all()


def test_scalar_table_without_sex_or_measured():
    tab = F.scalar_table(pd.DataFrame({"age_years": [50.0], "qrs_ms": [np.nan]}))
    assert math.isnan(tab["sex_male"].iloc[0]) and math.isnan(tab["qrs_ms"].iloc[0])


def test_scalar_column_derives_bmi_and_matrix_keeps_order():
    tab = pd.DataFrame({"height_cm": [200.0, 150.0, np.nan], "weight_kg": [80.0, 45.0, 70.0], "age_years": [1.0, 2.0, 3.0]})
    bmi = F.scalar_column(tab, "bmi")
    assert bmi[0] == pytest.approx(20.0) and bmi[1] == pytest.approx(20.0) and math.isnan(bmi[2])  # 80/2.0², 45/1.5²
    assert F.scalar_column(tab.assign(bmi=[1.0, 2.0, 3.0]), "bmi").tolist() == [1.0, 2.0, 3.0]
    m = F.scalar_matrix(tab, ["age_years", "weight_kg"])
    assert m.shape == (3, 2) and m[:, 0].tolist() == [1.0, 2.0, 3.0] and m[:, 1].tolist() == [80.0, 45.0, 70.0]
    assert F.scalar_matrix(tab.iloc[:0], ["age_years", "bmi"]).shape == (0, 2)


# ---------------------------------------------------------------- FeatureScaler

def _table():
    return pd.DataFrame({"age_years": [50.0, 70.0, np.nan], "sex_male": [1.0, 0.0, 1.0],
                         "height_cm": [170.0, 170.0, 170.0], "weight_kg": [80.0, 60.0, 90.0],
                         "qrs_ms": [90.0, 100.0, 140.0]})  # no axis columns at all


def test_scaler_fit_statistics_by_hand():
    sc = F.FeatureScaler.fit(_table(), [150.0, 110.0, 170.0])
    # age: finite 50, 70 -> median 60, mean 60, population SD 10
    assert (sc.medians["age_years"], sc.means["age_years"], sc.sds["age_years"]) == (60.0, 60.0, 10.0)
    # sex 1, 0, 1 -> median 1, mean 2/3, SD sqrt(2/9)
    assert sc.medians["sex_male"] == 1.0
    assert sc.means["sex_male"] == pytest.approx(2 / 3) and sc.sds["sex_male"] == pytest.approx(math.sqrt(2 / 9))
    # constant height: SD 0 is replaced by 1 (no division by zero)
    assert sc.sds["height_cm"] == 1.0 and sc.means["height_cm"] == 170.0
    # weight 80, 60, 90: median 80 (not the mean 76.67)
    assert sc.medians["weight_kg"] == 80.0 and sc.means["weight_kg"] == pytest.approx(230 / 3)
    # qrs 90, 100, 140: median 100, mean 110, SD sqrt((400 + 100 + 900) / 3)
    assert sc.medians["qrs_ms"] == 100.0 and sc.sds["qrs_ms"] == pytest.approx(math.sqrt(1400 / 3))
    # a column the table lacks: median 0, mean 0, SD 1
    assert (sc.medians["p_axis_deg"], sc.means["p_axis_deg"], sc.sds["p_axis_deg"]) == (0.0, 0.0, 1.0)
    # target 150, 110, 170: mean 430/3, population SD sqrt(5600/9)
    assert sc.target_mean_g == pytest.approx(430 / 3) and sc.target_sd_g == pytest.approx(math.sqrt(5600 / 9))


def test_scaler_sd_floor_is_strict():
    # a tiny but real spread is kept (only an SD at or below 1e-8 is replaced by 1)
    tab = pd.DataFrame({name: [0.0, 2e-6] for name in F.SCALAR_COLUMNS})
    sc = F.FeatureScaler.fit(tab, [100.0, 100.0 + 2e-6])
    assert sc.sds["age_years"] == pytest.approx(1e-6)
    assert sc.target_sd_g == pytest.approx(1e-6)
    const = F.FeatureScaler.fit(pd.DataFrame({"age_years": [5.0, 5.0]}), [200.0, 200.0])
    assert const.target_sd_g == 1.0 and const.target_mean_g == 200.0 and const.sds["age_years"] == 1.0


def test_scaler_target_ignores_nan_and_rejects_all_nan():
    sc = F.FeatureScaler.fit(_table(), [100.0, np.nan, 140.0])
    assert sc.target_mean_g == 120.0 and sc.target_sd_g == 20.0
    with pytest.raises(ValueError, match="no finite LVM"):
        F.FeatureScaler.fit(_table(), [np.nan, np.nan, np.nan])


def test_scaler_transform_by_hand():
    sc = F.FeatureScaler.fit(_table(), [150.0, 110.0, 170.0])
    new = pd.DataFrame({"age_years": [80.0, np.nan], "sex_male": [0.0, 1.0], "height_cm": [172.0, 170.0],
                        "weight_kg": [np.nan, 60.0], "qrs_ms": [100.0, "bad"], "p_axis_deg": [3.0, np.nan]})
    demo, par, imputed = sc.transform(new)
    assert demo.dtype == np.float32 and demo.shape == (2, 4) and par.shape == (2, 4)
    s = math.sqrt(2 / 9)
    np.testing.assert_allclose(demo[0], [(80 - 60) / 10, (0 - 2 / 3) / s, 2.0, (80 - 230 / 3) / math.sqrt(1400 / 9)],
                               rtol=1e-5)  # weight imputed with its median 80; weight SD sqrt(1400/9)
    np.testing.assert_allclose(demo[1], [0.0, (1 - 2 / 3) / s, 0.0, (60 - 230 / 3) / math.sqrt(1400 / 9)], rtol=1e-5)
    np.testing.assert_allclose(par[0], [-10 / math.sqrt(1400 / 3), 3.0, 0.0, 0.0], rtol=1e-5)
    np.testing.assert_allclose(par[1], [-10 / math.sqrt(1400 / 3), 0.0, 0.0, 0.0], rtol=1e-5)  # 'bad' -> median 100
    assert imputed == [("weight_kg", "r_axis_deg", "t_axis_deg"),
                       ("age_years", "qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg")]


def test_transform_values_equals_transform_and_lists_missing_names():
    sc = F.FeatureScaler.fit(_table(), [150.0, 110.0, 170.0])
    rows = [F.scalar_values(age_years=80, sex="F", height_cm=172, weight_kg=None, params={"qrs_ms": 100, "p_axis_deg": 3}),
            {"sex_male": 1.0, "qrs_ms": "bad"}]  # a mapping lacking most names
    demo, par, imputed = sc.transform_values(rows)
    ref_demo, ref_par, ref_imp = sc.transform(pd.DataFrame([F.scalar_values(age_years=80, sex="F", height_cm=172,
                                                                            params={"qrs_ms": 100, "p_axis_deg": 3}),
                                                            {"sex_male": 1.0, "qrs_ms": np.nan}]))
    assert demo.dtype == np.float32 and par.dtype == np.float32
    np.testing.assert_allclose(demo, ref_demo, rtol=1e-6)
    np.testing.assert_allclose(par, ref_par, rtol=1e-6)
    assert imputed == ref_imp == [("weight_kg", "r_axis_deg", "t_axis_deg"),
                                  ("age_years", "height_cm", "weight_kg", "qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg")]
    assert demo[0, 0] == pytest.approx(2.0) and demo[1, 2] == 0.0


def test_transform_values_with_no_param_inputs():
    sc = F.FeatureScaler.fit(_table(), [150.0, 110.0, 170.0], param_inputs=())
    demo, par, imputed = sc.transform_values([{"age_years": 70.0}, {}])
    assert par.shape == (2, 0) and par.dtype == np.float32 and demo.shape == (2, 4)
    assert imputed[0] == ("sex_male", "height_cm", "weight_kg") and len(imputed[1]) == 4
    assert sc.transform_values([])[0].shape == (0, 4)


def test_target_scaling_and_serialisation_round_trip():
    sc = F.FeatureScaler.fit(_table(), [100.0, np.nan, 140.0])  # mean 120, SD 20
    np.testing.assert_allclose(sc.normalise_target([120.0, 160.0, 80.0]), [0.0, 2.0, -2.0])
    assert sc.normalise_target([160.0]).dtype == np.float32
    np.testing.assert_allclose(sc.to_grams([0.0, 1.0, -0.5]), [120.0, 140.0, 110.0])
    d = sc.to_dict()
    assert d["target_mean_g"] == 120.0 and d["target_sd_g"] == 20.0 and d["medians"]["qrs_ms"] == 100.0
    assert d["demographic_inputs"] == list(F.DEMOGRAPHIC_INPUTS) and d["param_inputs"] == list(F.PARAM_INPUTS)
    back = F.FeatureScaler.from_dict(d)
    assert back == sc and isinstance(back.demographic_inputs, tuple)


# ---------------------------------------------------------------- CohortData and its helpers

def test_measured_params_device_wins_when_plausible():
    res = SimpleNamespace(measured={"qrs_ms": 88.0, "p_axis_deg": None, "r_axis_deg": 20.0},
                          device={"qrs_ms": "96", "r_axis_deg": 999, "t_axis_deg": 45, "heart_rate": 70})
    out = F._measured_params(res)
    assert list(out) == list(F.PARAM_INPUTS)
    assert out["qrs_ms"] == 96.0  # device value replaces ours
    assert out["r_axis_deg"] == 20.0  # device 999 is "not measured"
    assert out["t_axis_deg"] == 45.0 and math.isnan(out["p_axis_deg"])
    assert all(math.isnan(v) for v in F._measured_params(SimpleNamespace()).values())


def test_row_problem_reasons():
    good = SimpleNamespace(view=np.zeros((12, 4)), usable=False, flags=("noise", "pacing"))
    assert F._row_problem(good, False) is None
    assert F._row_problem(good, True) == "quality: noise, pacing"
    assert F._row_problem(SimpleNamespace(view=np.zeros(3)), True) is None  # no usable attribute: usable
    assert F._row_problem(SimpleNamespace(view=None), False) == "no usable beat"
    assert F._row_problem(ValueError("unreadable"), False) == "unreadable"
    err = ValueError("x")
    err.problem = "truncated file"
    assert F._row_problem(err, False) == "truncated file"
    assert F._row_problem(SimpleNamespace(view=np.array([0.0, np.nan])), False) == "non-finite samples in the model view"


def test_cohort_data_from_frame_lvm_and_subset():
    df = pd.DataFrame({"sex": ["M", "F", "F"], "qrs_ms": [90, 100, 110], "lvm_g": ["150", "x", 130.0]}, index=[7, 8, 9])
    data = F.CohortData.from_frame(df)
    assert len(data) == 3 and data.flags == [(), (), ()] and list(data.manifest.columns) == ["sex", "qrs_ms", "lvm_g"]
    assert data.measured["qrs_ms"].tolist() == [90.0, 100.0, 110.0] and list(data.measured.columns) == list(F.PARAM_INPUTS)
    lvm = data.lvm_g
    assert lvm[0] == 150.0 and math.isnan(lvm[1]) and lvm[2] == 130.0
    assert np.isnan(F.CohortData.from_frame(df.drop(columns="lvm_g")).lvm_g).all()
    assert data.scalars["sex_male"].tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="no ECG analyses"):
        data.analyses(SignalConfig())

    sig = SignalConfig()
    views = np.arange(3 * 12 * 2, dtype=float).reshape(3, 12, 2)
    vdata = F.CohortData.from_views(df, sig, views, data.measured.set_axis([4, 5, 6]), flags=[("a",), (), ("b",)])
    assert vdata.views(sig).dtype == np.float32 and "index" not in vdata.measured.columns
    assert vdata.measured.index.tolist() == [0, 1, 2] and vdata.manifest.index.tolist() == [0, 1, 2]
    assert F.CohortData.from_views(df, sig, views, data.measured).flags == [(), (), ()]
    vdata._analyses["k"] = ["a0", "a1", "a2"]
    sub = vdata.subset([2, 0])
    assert sub.manifest["qrs_ms"].tolist() == [110, 90] and sub.manifest.index.tolist() == [0, 1]
    assert sub.flags == [("b",), ("a",)] and sub.measured["qrs_ms"].tolist() == [110.0, 90.0]
    np.testing.assert_array_equal(sub.views(sig), views[[2, 0]].astype(np.float32))
    assert sub._analyses == {"k": ["a2", "a0"]} and sub.dropped == [] and list(sub.manifest.columns) == list(df.columns)
    assert list(sub.measured.columns) == list(F.PARAM_INPUTS)
    assert F.CohortData(df.iloc[:0], data.measured.iloc[:0]).subset([]).flags == []


def test_views_of_no_rows_and_from_the_provider():
    sig = SignalConfig()
    empty = F.CohortData(pd.DataFrame(), pd.DataFrame(), _provider=lambda s: [])
    v = empty.views(sig)
    assert v.shape == (0, 12, sig.view_length) and v.dtype == np.float32
    seen = []
    data = F.CohortData(pd.DataFrame({"a": [1]}), pd.DataFrame({"qrs_ms": [90.0]}),
                        _provider=lambda s: seen.append(s) or iter([SimpleNamespace(view=np.ones((12, 3), np.float64))]))
    assert data.views(sig).dtype == np.float32 and data.views(sig).shape == (1, 12, 3)
    assert seen == [sig]  # computed once, then kept
    assert isinstance(data.analyses(sig), list)


def _fake_pipeline(monkeypatch, results_by_signal):
    calls = []

    def fake(paths, sig, cache_dir, progress="not given"):
        calls.append((list(paths), sig, cache_dir, progress))
        return [results_by_signal[sig][str(p)] for p in paths]

    import elvmass.signal as signal_mod
    monkeypatch.setattr(signal_mod, "preprocess_cohort", fake)
    return calls


def test_cohort_data_keeps_rows_usable_in_every_signal(monkeypatch, tmp_path):
    a, b = SignalConfig(), SignalConfig(high_hz=35.0)
    ok = lambda m, flags=(): SimpleNamespace(view=np.ones((12, 2)), measured=m, device={}, usable=not flags, flags=flags)
    base = str(tmp_path)
    res = {a: {f"{base}/r0.xml": ok({"qrs_ms": 90.0}), f"{base}/r1.xml": ok({"qrs_ms": 95.0}, ("noise",)),
               f"{base}/r2.xml": ok({"qrs_ms": 99.0}), f"{base}/r3.xml": ValueError("bad header")},
           b: {f"{base}/r0.xml": ok({}), f"{base}/r1.xml": ok({}), f"{base}/r2.xml": SimpleNamespace(view=None),
               f"{base}/r3.xml": ok({})}}
    calls = _fake_pipeline(monkeypatch, res)
    manifest = pd.DataFrame({"ecg_path": ["r0.xml", "r1.xml", "r2.xml", "r3.xml"], "lvm_g": [1, 2, 3, 4]})
    progress = lambda i, n: None
    data = F.cohort_data(manifest.set_axis([7, 8, 9, 10]), [a, b, a], cache_dir=tmp_path / "c", base_dir=tmp_path,
                         progress=progress)
    assert len(calls) == 2 and calls[0][2] == tmp_path / "c"  # the repeated config runs once
    assert calls[0][3] is progress and calls[1][1] == b
    assert list(data.manifest.columns) == ["ecg_path", "lvm_g"] and data.manifest.index.tolist() == [0, 1]
    assert list(data.measured.columns) == list(F.PARAM_INPUTS)
    assert data.manifest["lvm_g"].tolist() == [1, 2]
    assert data.dropped == [{"row": 2, "ecg_path": f"{base}/r2.xml", "problem": "no usable beat"},
                            {"row": 3, "ecg_path": f"{base}/r3.xml", "problem": "bad header"}]
    assert data.flags == [(), ("noise",)] and data.measured["qrs_ms"].tolist() == [90.0, 95.0]
    assert len(data.analyses(b)) == 2
    c = SignalConfig(high_hz=30.0)  # asked for later: computed through the same cache for the kept rows only
    res[c] = {f"{base}/r0.xml": SimpleNamespace(view=np.ones((12, 2))), f"{base}/r1.xml": SimpleNamespace(view=np.ones((12, 2)))}
    assert data.analyses(c) == [res[c][f"{base}/r0.xml"], res[c][f"{base}/r1.xml"]]
    assert calls[-1][:3] == ([tmp_path / "r0.xml", tmp_path / "r1.xml"], c, tmp_path / "c")
    noflags = F.cohort_data(manifest.iloc[:1], c, cache_dir=tmp_path / "c", base_dir=tmp_path)
    assert noflags.flags == [()]  # an analysis without flags
    strict = F.cohort_data(manifest, a, cache_dir=tmp_path / "c", base_dir=tmp_path, drop_unusable=True)
    assert strict.manifest["lvm_g"].tolist() == [1, 3]
    assert strict.dropped[0] == {"row": 1, "ecg_path": f"{base}/r1.xml", "problem": "quality: noise"}
    with pytest.raises(ValueError, match="ecg_path"):
        F.cohort_data(manifest.drop(columns="ecg_path"), a)
    with pytest.raises(ValueError, match="at least one"):
        F.cohort_data(manifest, [])


def test_record_data_takes_measured_from_rows_and_reuses_analyses():
    sig = SignalConfig()
    rows = pd.DataFrame({"qrs_ms": ["100", None], "t_axis_deg": [30.0, 40.0]}, index=[3, 4])
    done = [SimpleNamespace(view=np.zeros((12, 2))), SimpleNamespace(view=np.ones((12, 2)))]
    data = F.record_data(iter(["rec0", "rec1"]), rows, analyses={sig: done})
    assert list(data.manifest.columns) == ["qrs_ms", "t_axis_deg"] and data.measured.index.tolist() == [0, 1]
    assert data.measured["qrs_ms"].iloc[0] == 100.0 and math.isnan(data.measured["qrs_ms"].iloc[1])
    assert data.measured["t_axis_deg"].tolist() == [30.0, 40.0] and data.measured["p_axis_deg"].isna().all()
    assert data.measured.dtypes.eq(float).all() and data.flags == [(), ()]
    assert data.analyses(sig) == done
    assert data.views(sig)[1].sum() == 24.0


def test_record_data_computes_other_configs_from_the_records(monkeypatch):
    import elvmass.signal as signal_mod

    monkeypatch.setattr(signal_mod, "analyze_ecg", lambda rec, sig: ("analysed", rec, sig))
    sig = SignalConfig(high_hz=30.0)
    data = F.record_data(iter(["rec0", "rec1"]), pd.DataFrame({"age_years": [1, 2]}))
    assert data.analyses(sig) == [("analysed", "rec0", sig), ("analysed", "rec1", sig)]
    assert data.measured.shape == (2, 4) and data.measured.isna().all().all()
