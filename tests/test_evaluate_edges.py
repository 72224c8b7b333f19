"""Edge cases of elvmass.evaluate (metrics, stats, splits) that the mutation run of ``scripts/mutation
evaluate`` showed untested: missing values given as None, the boundaries of the guards (2 folds, 2 cases
per class, a validation fraction of 0.5), the keys of the NaN results, missing patient IDs, and the
exact rows of small hand-worked splits. Expected values are worked out by hand in each test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from elvmass.evaluate.metrics import lvh_metrics, lvh_score, mae_g, mape_pct, mean_sd, roc_auc
from elvmass.evaluate.splits import assign_folds, hold_out_patients, make_splits, train_val_split
from elvmass.evaluate.stats import delong_test, paired_fold_test


# ---------------------------------------------------------------- metrics

def test_mae_and_mape_take_none_as_missing():
    assert mae_g([100, None, 120], [110, 5, None]) == 10.0
    assert math.isnan(mae_g([None, 1.0], [2.0, None]))
    # a zero or missing true value and a missing prediction are left out: only 100 -> 110 counts
    assert mape_pct([0, 100, None, 50], [5, 110, 3, None]) == pytest.approx(10.0)
    assert mape_pct([1, 100], [2, 110]) == pytest.approx(55.0)  # (100 % + 10 %) / 2: a true value of 1 counts
    assert math.isnan(mape_pct([0, np.nan], [1, 2]))


def test_roc_auc_single_case_classes_and_none_scores():
    assert roc_auc([1, 0, 0], [3.0, 1.0, 2.0]) == 1.0  # one positive is enough
    assert roc_auc([1, 1, 0], [3.0, 1.0, 2.0]) == 0.5  # one negative: 3 > 2, 1 < 2
    assert roc_auc([1, 0, 1, 0], [2.0, None, 1.0, 0.5]) == 1.0  # the None score is left out
    assert math.isnan(roc_auc([1, 1], [1.0, 2.0])) and math.isnan(roc_auc([0, 0], [1.0, 2.0]))


def test_lvh_score_and_metrics_with_custom_cutoffs_and_missing():
    s = lvh_score([80, None, 60], ["M", "F", "U"])
    assert s[0] == pytest.approx(80 / 72) and math.isnan(s[1]) and math.isnan(s[2])
    # cut-offs 100 (M) / 50 (F): predictions 90 M (no), 60 F (yes), 120 M (yes), 40 F (no), 70 M (no, label NaN)
    m = lvh_metrics([True, False, True, True, None], [90, 60, 120, 40, 70], ["M", "F", "M", "F", "M"],
                    cutoffs={"M": 100.0, "F": 50.0})
    # tp 1 (120 M), fp 1 (60 F), fn 2 (90 M, 40 F), tn 0
    assert m["n"] == 4 and m["n_lvh"] == 3
    assert m["accuracy"] == 0.25 and m["sensitivity"] == pytest.approx(1 / 3) and m["ppv"] == 0.5
    assert m["specificity"] == 0.0
    assert m["f1"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))  # 0.4
    # scores 0.9, 1.2, 1.2, 0.8 for labels T, F, T, T: positive 0.9 < 1.2, 1.2 = 1.2 (half), 0.8 < 1.2
    assert m["c_statistic"] == pytest.approx(0.5 / 3)


def test_mean_sd_edges():
    one = mean_sd([4.0, None])
    assert one["mean"] == 4.0 and math.isnan(one["sd"]) and one["folds"][0] == 4.0 and math.isnan(one["folds"][1])
    two = mean_sd([1.0, 3.0])
    assert two == {"mean": 2.0, "sd": pytest.approx(math.sqrt(2.0)), "folds": [1.0, 3.0]}
    empty = mean_sd([])
    assert math.isnan(empty["mean"]) and math.isnan(empty["sd"]) and empty["folds"] == []


# ---------------------------------------------------------------- stats

def test_paired_fold_test_edges():
    with pytest.raises(ValueError, match=r"same folds for both models, got \(3,\) and \(2,\)"):
        paired_fold_test([1, 2, 3], [1, 2])
    # two pairs are enough: differences -1 and -3, mean -2, t = -2 / (sqrt(2) / sqrt(2)) = -2
    r = paired_fold_test([1.0, 2.0], [2.0, 5.0])
    assert r["mean_diff"] == -2.0 and r["t"] == pytest.approx(-2.0)
    assert r["p_value"] == pytest.approx(2 * sps.t.sf(2.0, df=1))
    # a fold missing in either model is dropped from both (here leaving two pairs)
    r = paired_fold_test([1.0, np.nan, 2.0, 7.0], [2.0, 1.0, 5.0, None])
    assert r["mean_diff"] == -2.0 and r["t"] == pytest.approx(-2.0)
    same = paired_fold_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert same["mean_diff"] == 1.0 and math.isnan(same["t"]) and math.isnan(same["p_value"])
    none = paired_fold_test([np.nan], [1.0])
    assert set(none) == {"mean_diff", "t", "p_value"} and math.isnan(none["mean_diff"])


def test_delong_minimum_cases_and_nan_keys():
    # two of each class is enough; a perfect score a against a constant score b
    y = [1, 1, 0, 0]
    r = delong_test(y, [0.9, 0.8, 0.2, 0.1], [0.5, 0.5, 0.5, 0.5])
    assert r["auc_a"] == 1.0 and r["auc_b"] == 0.5
    # both AUC estimates have zero variance: the difference is certain, z = +inf, p = 0
    assert r["z"] == math.inf and r["p_value"] == 0.0
    r = delong_test(y, [0.5, 0.5, 0.5, 0.5], [0.9, 0.8, 0.2, 0.1])
    assert r["z"] == -math.inf and r["p_value"] == 0.0
    r = delong_test(y, [0.9, 0.8, 0.2, 0.1], [0.9, 0.8, 0.2, 0.1])
    assert r["z"] == 0.0 and r["p_value"] == 1.0
    for y_small in ([1, 0, 0, 0], [1, 1, 1, 0]):
        bad = delong_test(y_small, [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1])
        assert set(bad) == {"auc_a", "auc_b", "z", "p_value"} and all(math.isnan(v) for v in bad.values())


def test_delong_drops_cases_missing_in_any_input_and_counts_classes_apart():
    # 3 positives, 2 negatives (m != n), then three cases with a missing label, b score or a score
    y = [1, 1, 1, 0, 0, None, 0, 1]
    a = [0.9, 0.4, 0.7, 0.5, 0.2, 0.1, 0.3, np.nan]
    b = [0.3, 0.8, 0.6, 0.7, 0.1, 0.9, None, 0.5]
    r = delong_test(y, a, b)
    # a: (0.9, 0.4, 0.7) x (0.5, 0.2): only 0.4 < 0.5 -> 5 / 6; b: (0.3, 0.8, 0.6) x (0.7, 0.1): 0.3, 0.6 < 0.7 -> 4 / 6
    assert r["auc_a"] == pytest.approx(5 / 6) and r["auc_b"] == pytest.approx(4 / 6)
    assert r == delong_test(y[:5], a[:5], b[:5])


# ---------------------------------------------------------------- splits

def _ranked(n, **extra):
    return pd.DataFrame({"patient_id": [f"p{i:02d}" for i in range(n)], "lvm_g": np.arange(n, dtype=float), **extra})


def test_assign_folds_two_folds_and_missing_patient_ids():
    assert assign_folds(_ranked(5), 2).tolist() == [0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match="n_folds must be at least 2"):
        assign_folds(_ranked(5), 1)
    # rows without a patient ID are each their own patient; 'a' is ranked by its first (lowest) row
    df = pd.DataFrame({"patient_id": ["a", None, np.nan, "a", None], "lvm_g": [10.0, 20.0, 30.0, 40.0, 5.0]},
                      index=[10, 11, 12, 13, 14])  # not 0..n-1
    # order by LVM: row4 (own), row0 (a), row1 (own), row2 (own); row3 joins a
    assert assign_folds(df, 2).tolist() == [1, 0, 1, 1, 0]
    nocol = pd.DataFrame({"lvm_g": [3.0, 1.0, 2.0]})  # no patient column: every row its own patient
    assert assign_folds(nocol, 3).tolist() == [2, 0, 1]


def test_make_splits_validation_rows_by_hand():
    # 20 patients ranked 0..19, 2 folds, validation every 4th remaining patient, offset by the fold number
    df = _ranked(20)
    s0, s1 = make_splits(df, 2, 0.25)
    assert s0.test.tolist() == list(range(0, 20, 2)) and s1.test.tolist() == list(range(1, 20, 2))
    assert s0.val.tolist() == [1, 9, 17]  # remaining 1, 3, ..., 19 at positions 0, 4, 8
    assert s1.val.tolist() == [6, 14]  # remaining 0, 2, ..., 18 at positions 3, 7 ((pos + 1) % 4 == 0)
    assert len(make_splits(df, 4, 0.25)) == 4
    renamed = df.rename(columns={"lvm_g": "mass", "patient_id": "pid"})
    renamed["mass"] = renamed["mass"][::-1].to_numpy()  # reversed order
    r0 = make_splits(renamed, 2, 0.25, target="mass", patient_col="pid")[0]
    assert r0.test.tolist() == list(range(1, 20, 2))  # rank 0 is row 19
    same_pid = renamed.assign(pid="x")
    assert len(make_splits(same_pid, 2, 0.25, target="mass", patient_col="pid")[0].test) == 20  # one patient


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.6, -0.1])
def test_val_fraction_must_be_inside_0_and_half(fraction):
    with pytest.raises(ValueError, match="val_fraction must be between 0 and 0.5"):
        train_val_split(_ranked(10), fraction)


def test_train_val_split_defaults_and_small_step():
    tr, va = train_val_split(_ranked(10), 0.45)  # round(1 / 0.45) = 2: every second patient
    assert va.tolist() == [0, 2, 4, 6, 8] and tr.tolist() == [1, 3, 5, 7, 9]
    df = _ranked(30)
    df.loc[25, "patient_id"] = "p00"  # a second row of the lowest patient: it goes with it
    tr, va = train_val_split(df)  # default 10 %: ranks 0, 10, 20 among 29 patients
    assert va.tolist() == [0, 10, 20, 25]
    with pytest.raises(ValueError, match="sex must be 'M' or 'F', got 'X'"):
        train_val_split(df, sex="X")
    dfs = _ranked(6, sex=["F", "M", "F", "M", "F", "M"])
    tr, va = train_val_split(dfs, 0.4, sex="M")  # M rows 1, 3, 5; step round(2.5) = 2 -> positions 0, 2
    assert va.tolist() == [1, 5] and tr.tolist() == [3]


def test_hold_out_patients_by_hand():
    df = _ranked(10)
    kept, held = hold_out_patients(df, np.arange(10), 0.2)  # step 5, offset 5 - 2 = 3: positions 2, 7
    assert held.tolist() == [2, 7] and kept.tolist() == [0, 1, 3, 4, 5, 6, 8, 9]
    assert hold_out_patients(df, np.arange(10), 0.2, offset=0)[1].tolist() == [0, 5]
    # a subset of rows: 1, 3, 5, 7, 9 re-ranked 0..4; fraction 1/3 -> step 3, offset 3 - 1 = 2
    kept, held = hold_out_patients(df, [1, 3, 5, 7, 9], 1 / 3)  # (pos + 2) % 3 == 0: positions 1, 4
    assert held.tolist() == [3, 9] and kept.tolist() == [1, 5, 7]
    two = df.assign(patient_id=["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"])
    kept, held = hold_out_patients(two, np.arange(10), 0.2)  # 5 patients, step 5, offset 3: patient 'c'
    assert held.tolist() == [4, 5]
    renamed = two.rename(columns={"patient_id": "pid", "lvm_g": "mass"})
    assert hold_out_patients(renamed, np.arange(10), 0.2, target="mass", patient_col="pid")[1].tolist() == [4, 5]
