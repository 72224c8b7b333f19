"""No information from a test fold reaches the models that predict it.

The check is behavioural: change the test fold's LV masses (keeping their LVM order, so the folds
stay the same) and the out-of-fold predictions of that fold must not move by a single bit, for
eLVMass-Net (target scaling, imputation, standardisation, early stopping) and for the
demographics comparator alike. Plus the fitted statistics themselves are the training rows'.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from elvmass.cohort import add_derived_columns
from elvmass.evaluate.splits import make_splits
from elvmass.experiments.protocol import run_protocol
from elvmass.experiments.study import make_preset
from elvmass.features import PARAM_INPUTS, CohortData

N = 60


def _features(lvm_g: np.ndarray, seed: int = 0, signal_lvm_g: np.ndarray | None = None) -> CohortData:
    """A cohort with a waveform that carries LVM (V5 amplitude of ``signal_lvm_g``, default ``lvm_g``),
    some missing demographics."""
    rng = np.random.default_rng(seed)
    sex = np.where(np.arange(N) % 2 == 0, "M", "F")
    height = rng.normal(170, 8, N).round(0)
    weight = rng.normal(78, 12, N).round(0)
    age = rng.uniform(30, 80, N).round(0)
    age[::7] = np.nan  # imputed from the training rows' median
    df = pd.DataFrame({"patient_id": [f"p{i:03d}" for i in range(N)], "ecg_path": [f"e{i}.xml" for i in range(N)],
                       "lvm_g": lvm_g, "sex": sex, "age_years": age, "height_cm": height, "weight_kg": weight})
    df = add_derived_columns(df)
    length = make_preset("quick").signal.view_length
    views = rng.normal(0, 0.05, (N, 12, length)).astype(np.float32)
    views[:, 10, length // 3] += ((lvm_g if signal_lvm_g is None else signal_lvm_g) / 100.0).astype(np.float32)
    measured = pd.DataFrame({k: rng.normal(90 if k == "qrs_ms" else 40, 10, N) for k in PARAM_INPUTS})
    return CohortData.from_views(df, make_preset("quick").signal, views, measured)


def _protocol(data, preset):
    entries, pools = preset.entries(sex_specific=True)
    return run_protocol(data, entries, n_folds=preset.n_folds, val_fraction=preset.val_fraction, pools=pools)


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(1)
    lvm = 80.0 + 5.0 * rng.permutation(N)  # distinct, 5 g apart: a shift < 5 g keeps the order
    preset = make_preset("quick", epochs=2)
    return lvm, preset


def test_test_fold_targets_never_reach_its_predictions(setup):
    lvm, preset = setup
    base = _protocol(_features(lvm), preset)
    fold0 = base.folds == 0
    changed = lvm.copy()
    changed[fold0] += 4.0  # same LVM order, same folds: only fold 0's own targets differ
    other = _protocol(_features(changed, signal_lvm_g=lvm), preset)  # same ECGs
    assert (other.folds == base.folds).all()
    for name, pred in base.predictions.items():
        assert np.isfinite(pred[fold0]).sum() > 0, name
        np.testing.assert_array_equal(pred[fold0], other.predictions[name][fold0], err_msg=name)
        # ... while the folds that trained on the changed rows do see the change
        assert not np.array_equal(pred[~fold0], other.predictions[name][~fold0]), name


def test_scaler_statistics_come_from_training_rows_only(setup):
    lvm, preset = setup
    feats = _features(lvm)
    split = make_splits(feats.manifest, 5, 0.1)[2]
    spec = dataclasses.replace(preset.net_spec(), train=dataclasses.replace(preset.train, epochs=1, progress=False))
    fitted = spec.fit(feats, split)
    scaler = fitted.scaler
    assert scaler.target_mean_g == pytest.approx(lvm[split.train].mean())
    assert scaler.target_sd_g == pytest.approx(lvm[split.train].std())
    age = feats.manifest["age_years"].to_numpy()
    tr_age = age[split.train][np.isfinite(age[split.train])]
    assert scaler.medians["age_years"] == pytest.approx(np.median(tr_age))
    assert scaler.means["age_years"] == pytest.approx(tr_age.mean())
    qrs = feats.measured["qrs_ms"].to_numpy()
    assert scaler.means["qrs_ms"] == pytest.approx(qrs[split.train].mean())
    # early stopping looked at the validation rows: the stored best validation MAE is theirs
    assert fitted.info["val_mae_g"] == pytest.approx(min(h["val_mae_g"] for h in fitted.history), abs=1e-3)
