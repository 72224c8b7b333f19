"""Splits (sorted every-fifth, by patient), metrics (MAE, MAPE, LVH, AUC) and tests (paired fold
test, DeLong against a direct O(m*n) computation)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from elvmass.evaluate.metrics import lvh_metrics, lvh_score, mae_g, mape_pct, mean_sd, roc_auc
from elvmass.evaluate.splits import assign_folds, make_splits, train_val_split
from elvmass.evaluate.stats import delong_test, paired_fold_test


def _cohort(n=103, seed=0, repeat_every=0):
    rng = np.random.default_rng(seed)
    lvm = rng.uniform(60, 300, n).round(1)
    pid = [f"p{i:04d}" for i in range(n)]
    df = pd.DataFrame({"patient_id": pid, "lvm_g": lvm, "sex": rng.choice(["M", "F"], n)})
    if repeat_every:
        # some patients have a second ECG row (same LVM, same patient)
        extra = df.iloc[::repeat_every].copy()
        df = pd.concat([df, extra], ignore_index=True).sample(frac=1.0, random_state=1).reset_index(drop=True)
    return df


def test_folds_follow_sorted_every_fifth_rule():
    df = _cohort()
    folds = assign_folds(df, 5)
    order = np.argsort(df["lvm_g"].to_numpy(), kind="mergesort")
    assert folds[order].tolist() == [i % 5 for i in range(len(df))]
    counts = np.bincount(folds)
    assert counts.max() - counts.min() <= 1
    # every fold spans the LVM range (stratified by construction)
    for k in range(5):
        v = df["lvm_g"][folds == k]
        assert v.min() < 80 and v.max() > 270


def test_patients_never_cross_folds_or_sets():
    df = _cohort(repeat_every=4)
    folds = assign_folds(df, 5)
    per_patient = pd.Series(folds).groupby(df["patient_id"]).nunique()
    assert (per_patient == 1).all()
    for s in make_splits(df, 5, 0.1):
        sets = [set(df["patient_id"].iloc[idx]) for idx in (s.train, s.val, s.test)]
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
        assert len(s.train) + len(s.val) + len(s.test) == len(df)
        assert (folds[s.test] == s.fold).all()


def test_validation_is_about_ten_percent_and_varies_by_fold():
    df = _cohort(n=500)
    splits = make_splits(df, 5, 0.1)
    vals = []
    for s in splits:
        frac = len(s.val) / (len(s.train) + len(s.val))
        assert 0.09 <= frac <= 0.11
        vals.append(set(s.val))
    assert len({frozenset(v) for v in vals}) == 5
    # deterministic
    again = make_splits(df, 5, 0.1)
    assert all((a.val == b.val).all() and (a.test == b.test).all() for a, b in zip(splits, again))


def test_sex_specific_splits_keep_the_cohort_folds():
    df = _cohort(n=200)
    folds = assign_folds(df, 5)
    for sex in ("M", "F"):
        for s in make_splits(df, 5, 0.1, sex=sex):
            rows = np.concatenate([s.train, s.val, s.test])
            assert (df["sex"].iloc[rows] == sex).all()
            assert (folds[s.test] == s.fold).all()
            assert set(rows) == set(np.flatnonzero(df["sex"] == sex))


def test_train_val_split_for_final_model():
    df = _cohort(n=100)
    tr, va = train_val_split(df, 0.1, sex="F")
    assert set(tr).isdisjoint(va)
    assert (df["sex"].iloc[np.concatenate([tr, va])] == "F").all()
    assert abs(len(va) - 0.1 * (len(tr) + len(va))) <= 1


def test_split_errors():
    with pytest.raises(ValueError, match="no 'lvm_g'"):
        assign_folds(pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match="rows have no lvm_g"):
        assign_folds(pd.DataFrame({"patient_id": ["a", "b"], "lvm_g": [1.0, np.nan]}))


def test_mae_mape_values():
    assert mae_g([100, 200, np.nan], [110, 180, 5]) == pytest.approx(15.0)
    assert mape_pct([100, 200], [110, 180]) == pytest.approx(10.0)


def test_mean_predictor_has_the_expected_mae():
    """Sanity check of the whole metric path: predicting the training mean gives mean |y - mean|."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"patient_id": [f"p{i}" for i in range(250)], "lvm_g": rng.normal(150, 35, 250)})
    y = df["lvm_g"].to_numpy()
    folds = assign_folds(df)
    fold_mae = []
    for s in make_splits(df):
        mu = y[np.concatenate([s.train, s.val])].mean()
        fold_mae.append(mae_g(y[s.test], np.full(len(s.test), mu)))
        assert fold_mae[-1] == pytest.approx(np.mean(np.abs(y[folds == s.fold] - mu)))
    summary = mean_sd(fold_mae)
    # for a normal target the mean predictor's MAE is about sigma * sqrt(2/pi)
    assert summary["mean"] == pytest.approx(35 * math.sqrt(2 / math.pi), rel=0.12)
    assert summary["sd"] == pytest.approx(np.std(fold_mae, ddof=1))


def test_lvh_metrics_by_hand():
    true = np.array([1, 1, 0, 0, 1, 0, 0, 1], bool)
    sex = np.array(["M", "M", "M", "M", "F", "F", "F", "F"])
    lvmi = np.array([80, 70, 73, 60, 60, 50, 56, 54], float)  # cut-offs 72 (M), 55 (F)
    # predicted LVH: 80>72 T, 70 F, 73 T, 60 F, 60>55 T, 50 F, 56 T, 54 F
    m = lvh_metrics(true, lvmi, sex)
    tp, fn, fp, tn = 2, 2, 2, 2
    assert m["accuracy"] == pytest.approx((tp + tn) / 8)
    assert m["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["ppv"] == pytest.approx(tp / (tp + fp))
    assert m["f1"] == pytest.approx(0.5)
    assert m["c_statistic"] == pytest.approx(roc_auc(true, lvmi / np.where(sex == "M", 72, 55)))
    # exactly at the cut-off is not LVH (as elvmass.cohort.is_lvh)
    assert lvh_metrics([False], [72.0], ["M"])["specificity"] == 1.0
    assert lvh_score([144.0, 110.0], ["M", "F"]).tolist() == [2.0, 2.0]


def test_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    s = np.round(rng.normal(size=200) + y, 1)  # rounding creates ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_paired_fold_test_matches_manual_t():
    a = np.array([12.1, 13.0, 11.8, 12.6, 12.2])
    b = np.array([14.0, 14.2, 13.1, 14.9, 13.3])
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    p = 2 * sps.t.sf(abs(t), df=4)
    res = paired_fold_test(a, b)
    assert res["t"] == pytest.approx(t)
    assert res["p_value"] == pytest.approx(p)
    assert math.isnan(paired_fold_test([1, 2], [2, 3])["p_value"])  # identical differences: no test


def _slow_delong(y, a, b):
    """DeLong et al. (1988) structural components computed directly, O(m*n)."""
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)

    def psi(x, z):
        return (x > z) + 0.5 * (x == z)

    comps = []
    for s in (a, b):
        k = psi(s[pos][:, None], s[neg][None, :])
        comps.append((k.mean(), k.mean(axis=1), k.mean(axis=0)))
    (auc_a, v10a, v01a), (auc_b, v10b, v01b) = comps
    m, n = len(pos), len(neg)
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    z = (auc_a - auc_b) / math.sqrt(var)
    return auc_a, auc_b, 2 * sps.norm.sf(abs(z))


def test_delong_matches_direct_computation():
    rng = np.random.default_rng(5)
    y = rng.random(150) < 0.4
    a = y + rng.normal(0, 0.8, 150)
    b = np.round(y * 0.5 + rng.normal(0, 0.8, 150), 1)
    res = delong_test(y, a, b)
    auc_a, auc_b, p = _slow_delong(y, a, b)
    assert res["auc_a"] == pytest.approx(auc_a)
    assert res["auc_b"] == pytest.approx(auc_b)
    assert res["p_value"] == pytest.approx(p, rel=1e-6)
    assert res["p_value"] < 0.05
    from sklearn.metrics import roc_auc_score

    assert res["auc_a"] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert res["auc_b"] == pytest.approx(roc_auc_score(y, b), abs=1e-12)  # b has ties
    same = delong_test(y, a, a)
    assert same["p_value"] == pytest.approx(1.0)
