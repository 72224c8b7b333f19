"""The archive's fast prediction path (scalars and scaler in NumPy, one model call per chunk) against the
per-file path, on the genuine vendor exports and PTB-XL records.

The reference for the scalars is the pandas route every model family trains on
(:func:`elvmass.features.scalar_table` then :meth:`FeatureScaler.transform`); the reference for a prediction
is the fitted model's own ``predict`` on :func:`elvmass.features.record_data` (one ECG, one forward pass),
which is what ``predict_record`` did per file before the NumPy path.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from elvmass.features import FeatureScaler, plausible_param, record_data, scalar_table, scalar_values

#: float32 rounding of a batched forward pass: the normalised output differs by a few ulp (~1e-7
#: relative), times the target SD (tens of grams) gives ~1e-5 g; 1e-3 g is far below the 0.1 g printed.
BATCH_TOL_G = 1e-3


def _real_files(shared_data):
    from elvmass.io import find_ecg_files

    vendor = sorted(find_ecg_files(shared_data / "vendor"))
    ptb = sorted((shared_data / "ptbxl-sample" / "records500").rglob("*.hea"))[:12]
    assert len(vendor) >= 6 and len(ptb) == 12
    return vendor + ptb


def test_numpy_scaler_is_bit_identical_to_the_pandas_scaler():
    rng = np.random.default_rng(7)
    train = pd.DataFrame({"age_years": rng.uniform(20, 90, 50), "sex_male": rng.integers(0, 2, 50).astype(float),
                          "height_cm": rng.uniform(150, 195, 50), "weight_kg": rng.uniform(45, 120, 50),
                          "qrs_ms": rng.uniform(70, 130, 50), "p_axis_deg": rng.uniform(-30, 90, 50),
                          "r_axis_deg": rng.uniform(-30, 90, 50), "t_axis_deg": rng.uniform(-30, 90, 50)})
    scalers = [FeatureScaler.fit(train, rng.uniform(80, 250, 50)),
               FeatureScaler.fit(train, rng.uniform(80, 250, 50), ("age_years", "sex_male", "bmi"), ("qrs_ms",)),
               FeatureScaler.fit(train, rng.uniform(80, 250, 50), ("age_years",), ())]
    rows = [dict(age_years=61.3, sex="M", height_cm=171.0, weight_kg=77.7, params={"qrs_ms": 96.0, "r_axis_deg": -12}),
            dict(age_years=None, sex="F", height_cm="165", weight_kg=None, params={"qrs_ms": "n/a", "t_axis_deg": 40}),
            dict(age_years=float("nan"), sex=None, height_cm=None, weight_kg=None, params={}),
            dict(age_years=44, sex="X", height_cm=200.5, weight_kg=130.25, params={"p_axis_deg": float("inf")})]
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "params"} | r["params"] for r in rows])
    for sc in scalers:
        d_ref, p_ref, imp_ref = sc.transform(scalar_table(frame))
        d, p, imp = sc.transform_values([scalar_values(**r) for r in rows])
        assert d.dtype == p.dtype == np.float32
        assert d.tobytes() == d_ref.tobytes() and p.tobytes() == p_ref.tobytes()
        assert imp == imp_ref
    # the second row: age, weight and two axes missing, the unreadable QRS too
    assert imp[1] == ("age_years",)
    assert scalers[0].transform_values([scalar_values(**rows[1])])[2][0] == (
        "age_years", "weight_kg", "qrs_ms", "p_axis_deg", "r_axis_deg")


def _pandas_reference_g(bundle, rec, pred) -> float:
    """The model's mass for ``rec`` the pre-NumPy way: a one-row DataFrame, record_data, fitted.predict."""
    from elvmass.signal.analysis import analyze_ecg

    analysis = analyze_ecg(rec, bundle.signal_config)
    dev = rec.measurements.as_dict()
    params = {}
    for k in ("qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg"):
        v = dev.get(k)
        params[k] = v if plausible_param(k, v) else (analysis.measured.get(k)
                                                     if plausible_param(k, analysis.measured.get(k)) else None)
    row = pd.DataFrame([{"age_years": pred.age_years, "sex": pred.sex, "height_cm": pred.height_cm,
                         "weight_kg": pred.weight_kg, **params}])
    data = record_data([rec], row, analyses={bundle.signal_config: [analysis]})
    return float(bundle.fitted[pred.model].predict(data, np.array([0]))[0])


def test_batched_archive_path_equals_the_per_file_path_on_real_files(trained_bundle, shared_data):
    from elvmass import read_ecg
    from elvmass.bundle import load_bundle
    from elvmass.errors import ECGReadError
    from elvmass.predict import predict_record, predict_records

    bundle = load_bundle(trained_bundle)
    files = _real_files(shared_data)
    calls = []
    run = bundle.run
    bundle.run = lambda name, ecg, d, p: (calls.append((name, len(ecg))), run(name, ecg, d, p))[1]
    batched = predict_records(bundle, [{"record": f, "path": str(f)} for f in files], max_batch=None)
    n_ok = sum(not isinstance(r, Exception) for r in batched)
    # one forward pass per model for the whole chunk, covering every predicted file
    assert len(calls) == len({n for n, _ in calls}) and sum(k for _, k in calls) == n_ok
    calls.clear()
    n_compared = 0
    for f, got in zip(files, batched):
        try:
            rec = read_ecg(f)
            want = predict_record(bundle, rec, path=str(f))
        except ECGReadError as exc:  # the same refusal, with the same one-line reason
            assert isinstance(got, ECGReadError) and str(got) == str(exc), f
            continue
        assert not isinstance(got, Exception), f"{f}: {got}"
        # per-file path: bit-identical to the pandas route (same one-row forward pass)
        assert want.lvm_g == _pandas_reference_g(bundle, rec, want), f
        assert abs(got.lvm_g - want.lvm_g) <= BATCH_TOL_G, f
        a, b = got.to_dict(), want.to_dict()
        for k in ("lvm_g", "lvm_g_low", "lvm_g_high", "lvmi_g_m2", "lvh_probability"):
            x, y = a.pop(k), b.pop(k)
            assert (x is None) == (y is None) and (x is None or math.isclose(x, y, abs_tol=0.1 + 1e-9)), (f, k)
        assert a == b, f  # flags (imputed, measured, sex_unknown, ...), model, LVH call, inputs used
        n_compared += 1
    assert n_compared >= 10


@pytest.mark.parametrize("bad", ["corrupt.xml"])
def test_a_bad_file_in_a_batch_is_its_own_error_row(trained_bundle, shared_data, tmp_path, bad):
    from elvmass.bundle import load_bundle
    from elvmass.errors import ECGReadError
    from elvmass.predict import predict_records

    good = shared_data / "vendor" / "ge-muse-xml" / "muse_ecg2.xml"
    (tmp_path / bad).write_bytes(good.read_bytes()[:5000])
    res = predict_records(load_bundle(trained_bundle), [{"record": good}, {"record": tmp_path / bad}, {"record": good}],
                          max_batch=None)
    assert not isinstance(res[0], Exception) and res[0].lvm_g == res[2].lvm_g
    assert isinstance(res[1], ECGReadError) and bad in str(res[1])
