"""Fast unit tests of the comparators in elvmass.models.criteria and elvmass.models.demographics (the test
selection of ``scripts/mutation models``; tests/test_comparators.py trains them on a cohort and takes minutes).
Expected values are the criteria's published cut-offs, hand counts of confusion tables, scikit-learn's
ROC AUC, and closed-form cases (an exactly linear LV mass, Mosteller's BSA of 180 cm / 80 kg = 2 m²)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from elvmass.evaluate.splits import Split
from elvmass.features import CohortData
from elvmass.models import criteria as C
from elvmass.models import demographics as D


# ---------------------------------------------------------------- calls at the published cut-offs

@pytest.mark.parametrize("name, value, sex, call", [
    # Sokolow-Lyon: SV1 + max(RV5, RV6) >= 35 mm (3.5 mV), either sex
    ("sokolow_lyon", 3.5, None, True), ("sokolow_lyon", 3.49, "F", False),
    # Cornell voltage: RaVL + SV3 > 28 mm men, > 20 mm women (strict)
    ("cornell_voltage", 2.8, "M", False), ("cornell_voltage", 2.81, "M", True),
    ("cornell_voltage", 2.0, "F", False), ("cornell_voltage", 2.01, "F", True), ("cornell_voltage", 2.5, "M", False),
    # Cornell product >= 2440 mm.ms = 244 mV.ms
    ("cornell_product", 244.0, "M", True), ("cornell_product", 243.9, "F", False),
    # Peguero-Lo Presti: deepest S + SV4 >= 28 mm men, >= 23 mm women
    ("peguero_lo_presti", 2.8, "M", True), ("peguero_lo_presti", 2.79, "M", False),
    ("peguero_lo_presti", 2.3, "F", True), ("peguero_lo_presti", 2.29, "F", False),
    # Romhilt-Estes: >= 5 points is definite LVH, sex-independent
    ("romhilt_estes", 5, None, True), ("romhilt_estes", 4, "M", False),
])
def test_criterion_positive_at_published_cutoffs(name, value, sex, call):
    assert C.criterion_positive(name, value, sex) is call


def test_criterion_positive_without_value_or_sex():
    assert C.criterion_positive("sokolow_lyon", None, "M") is None
    assert C.criterion_positive("sokolow_lyon", math.nan, "M") is None
    for name in ("cornell_voltage", "cornell_product", "peguero_lo_presti"):
        assert C.criterion_positive(name, 9.0, None) is None and C.criterion_positive(name, 9.0, "U") is None
    with pytest.raises(ValueError, match="unknown criterion 'foo'"):
        C.criterion_positive("foo", 1.0, "M")


def test_cutoff_texts_state_the_published_values():
    assert C.criterion_cutoff_text("sokolow_lyon") == ">= 3.5 mV"
    assert C.criterion_cutoff_text("romhilt_estes") == ">= 5 points"
    assert C.criterion_cutoff_text("cornell_product") == ">= 244 mV.ms"
    assert C.criterion_cutoff_text("cornell_voltage") == "> 2.8 mV (men), > 2.0 mV (women)"
    assert C.criterion_cutoff_text("peguero_lo_presti") == ">= 2.8 mV (men), >= 2.3 mV (women)"
    with pytest.raises(ValueError, match="unknown"):
        C.criterion_cutoff_text("lewis")


def test_criterion_classifier_values_and_calls():
    with pytest.raises(ValueError, match="unknown criterion"):
        C.CriterionClassifier("lewis")
    clf = C.CriterionClassifier("cornell_voltage")
    crit = [{"cornell_voltage_mv": 3.0}, {"cornell_voltage_mv": None}, {}, {"cornell_voltage_mv": "2.1"}]
    v = clf.values(crit)
    assert v[0] == 3.0 and math.isnan(v[1]) and math.isnan(v[2]) and v[3] == 2.1
    assert clf.calls(crit, ["M", "M", "F", "F"]) == [True, None, None, True]


# ---------------------------------------------------------------- c-statistic and confusion counts

def test_c_statistic_equals_sklearn_auc_with_ties_and_nan():
    rng = np.random.default_rng(3)
    score = np.round(rng.normal(size=60), 1)  # rounding makes ties
    label = rng.random(60) < 0.4
    assert C.c_statistic(score, label) == pytest.approx(roc_auc_score(label, score))
    assert C.c_statistic([1.0, 1.0], [True, False]) == 0.5  # a tie counts half
    assert C.c_statistic([3.0, 1.0, np.nan], [False, True, True]) == 0.0  # NaN score left out
    assert math.isnan(C.c_statistic([1.0, 2.0], [True, True])) and math.isnan(C.c_statistic([1.0, 2.0], [False, False]))
    assert math.isnan(C.c_statistic([np.nan, 2.0], [True, False]))


def test_lvh_metrics_hand_counted():
    # calls:  T  T  F  F  T  None  F ; lvh: 1 0 1 0 1 1 NaN  -> tp 2, fp 1, fn 1, tn 1 (n 5)
    calls = [True, True, False, False, True, None, False]
    lvh = [1, 0, 1, 0, 1, 1, np.nan]
    values = [5.0, 4.0, 1.0, 0.5, 6.0, 3.0, 9.0]
    m = C.lvh_metrics(values, calls, lvh)
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(1 / 2)
    assert m["ppv"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    # c-statistic over the six rows with a label, including the no-call row: positives 5, 1, 6, 3 vs negatives 4, 0.5
    assert m["c_statistic"] == pytest.approx(roc_auc_score([1, 0, 1, 0, 1, 1], values[:6]))
    assert m["c_statistic"] == pytest.approx(6 / 8)  # 1 and 3 lose to 4


def test_lvh_metrics_undefined_ratios_are_nan():
    m = C.lvh_metrics([1.0, 2.0], [False, False], [0, 0])  # no positives, no positive calls
    assert math.isnan(m["sensitivity"]) and math.isnan(m["ppv"]) and math.isnan(m["f1"])
    assert m["specificity"] == 1.0 and m["accuracy"] == 1.0 and math.isnan(m["c_statistic"])
    m = C.lvh_metrics([1.0, 2.0], [False, True], [1, 0])  # tp 0: sensitivity = ppv = 0, F1 undefined
    assert m["sensitivity"] == 0.0 and m["ppv"] == 0.0 and math.isnan(m["f1"])
    empty = C.lvh_metrics([], [], [])
    assert empty["n"] == 0 and math.isnan(empty["accuracy"]) and math.isnan(empty["specificity"])


# ---------------------------------------------------------------- over analyses, and criteria_linear

def _data(crit, **cols):
    manifest = pd.DataFrame(cols)
    data = CohortData.from_frame(manifest)
    data._provider = lambda sig: [SimpleNamespace(criteria=c) for c in crit]
    return data


def test_criteria_lvh_table_one_row_per_criterion():
    crit = [{"sokolow_lyon_mv": 4.0, "cornell_voltage_mv": 1.0}, {"sokolow_lyon_mv": 2.0, "cornell_voltage_mv": 3.0},
            {"sokolow_lyon_mv": 3.6, "cornell_voltage_mv": 2.5}]
    data = _data(crit, sex=["M", "F", "F"], lvh=[1, 0, "x"])
    table = C.criteria_lvh_table(data)
    assert [r["criterion"] for r in table] == list(C.CRITERIA)
    sl = table[0]  # calls T, F, T; labels 1, 0, NaN -> tp 1, tn 1
    assert sl["n"] == 2 and sl["sensitivity"] == 1.0 and sl["specificity"] == 1.0
    cv = table[1]  # calls F (M, 1.0), T (F, 3.0 > 2.0) -> fn 1, fp 1
    assert cv["sensitivity"] == 0.0 and cv["specificity"] == 0.0 and cv["c_statistic"] == 0.0
    assert table[4]["n"] == 0  # no Romhilt-Estes points in these dicts
    sub = C.criteria_lvh_table(data, rows=[1, 0])
    assert sub[0]["n"] == 2 and sub[0]["sensitivity"] == 1.0
    nolabel = C.criteria_lvh_table(_data(crit, age_years=[1, 2, 3]))
    assert nolabel[0]["n"] == 0  # no sex, no lvh column: nothing to count


def _linear_cohort():
    rng = np.random.default_rng(0)
    n = 40
    sl, cv = rng.uniform(1, 4, n), rng.uniform(0.5, 3, n)
    age, h, w = rng.uniform(30, 80, n), rng.uniform(150, 195, n), rng.uniform(50, 110, n)
    sex = np.where(rng.random(n) < 0.5, "M", "F")
    bmi = w / (h / 100) ** 2
    true = {"intercept": 20.0, "sokolow_lyon_mv": 10.0, "cornell_voltage_mv": 15.0, "age_years": 0.5, "sex_male": 25.0,
            "height_cm": 0.3, "weight_kg": 0.8, "bmi": -1.5}
    lvm = (true["intercept"] + true["sokolow_lyon_mv"] * sl + true["cornell_voltage_mv"] * cv + true["age_years"] * age
           + true["sex_male"] * (sex == "M") + true["height_cm"] * h + true["weight_kg"] * w + true["bmi"] * bmi)
    crit = [{"sokolow_lyon_mv": a, "cornell_voltage_mv": b} for a, b in zip(sl, cv)]
    return _data(crit, age_years=age, sex=sex, height_cm=h, weight_kg=w, lvm_g=lvm), true, lvm


def test_linear_inputs_columns():
    data, _, _ = _linear_cohort()
    x = C.linear_inputs(data, C.SignalConfig())
    assert x.shape == (40, 7)
    bmi = data.manifest["weight_kg"] / (data.manifest["height_cm"] / 100) ** 2
    np.testing.assert_allclose(x[:, 6], bmi)
    np.testing.assert_array_equal(x[:, 3], (data.manifest["sex"] == "M").astype(float))


def test_criteria_linear_recovers_an_exactly_linear_mass():
    data, true, lvm = _linear_cohort()
    split = Split(0, np.arange(0, 25), np.arange(25, 30), np.arange(30, 40))
    fitted = C.CriteriaLinearSpec(name="criteria_linear").fit(data, split)
    assert fitted.info == {"n_train": 30}
    for k, v in true.items():
        assert fitted.coefficients[k] == pytest.approx(v, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(fitted.predict(data, split.test), lvm[30:], rtol=1e-8)
    arrays, meta = fitted.state()
    assert meta["inputs"] == list(C.LINEAR_INPUTS) and arrays["coef"].dtype == np.float64
    back = C.CriteriaLinearSpec.load_fitted(fitted.spec, arrays, meta)
    np.testing.assert_allclose(back.predict(data, [0, 1]), lvm[:2], rtol=1e-8)


def test_criteria_linear_fills_missing_inputs_with_training_medians():
    # intercept-only truth plus Sokolow-Lyon: lvm = 100 + 10 * SL on training rows; the other inputs constant
    crit = [{"sokolow_lyon_mv": v, "cornell_voltage_mv": None} for v in (1.0, 2.0, 3.0, 4.0, 5.0, None)]
    data = _data(crit, lvm_g=[110.0, 120.0, 130.0, 140.0, 150.0, np.nan], age_years=[50.0] * 6)
    split = Split(0, np.arange(0, 4), np.arange(4, 6), np.arange(0, 0))
    fitted = C.CriteriaLinearSpec(name="criteria_linear").fit(data, split)
    assert fitted.info["n_train"] == 5  # the row without LV mass is left out
    assert fitted.medians[0] == 3.0  # median of 1..5
    assert fitted.medians[1] == 0.0  # Cornell never measured: 0
    assert fitted.medians[2] == 50.0
    # the row without Sokolow-Lyon is predicted at the median, 100 + 10 * 3
    assert fitted.predict(data, [5])[0] == pytest.approx(130.0)
    assert fitted.predict(data, [0])[0] == pytest.approx(110.0)


def test_criteria_linear_spec_signal_from_plain_dict():
    sig = C.SignalConfig(high_hz=35.0)
    assert C.CriteriaLinearSpec._field_from_plain("signal", sig.to_dict()) == sig
    assert C.CriteriaLinearSpec._field_from_plain("signal", sig) is sig
    assert C.CriteriaLinearSpec(name="x", signal=sig).signals == (sig,)


# ---------------------------------------------------------------- demographics comparator

def test_demographic_features_closed_form():
    df = pd.DataFrame({"age_years": ["61", 40], "sex": ["M", "X"], "height_cm": [180.0, 200.0], "weight_kg": [80.0, np.nan]})
    x = D.demographic_features(df)
    assert x.shape == (2, 6)
    assert x[0].tolist() == pytest.approx([61.0, 1.0, 180.0, 80.0, 80 / 1.8 ** 2, 2.0])  # BSA sqrt(180*80/3600) = 2
    assert math.isnan(x[1, 1]) and math.isnan(x[1, 4]) and math.isnan(x[1, 5])
    given = D.demographic_features(df.assign(bmi=[25.0, 26.0], bsa_m2=[1.9, 2.1], sex=["F", "M"]))
    assert given[:, 4].tolist() == [25.0, 26.0] and given[:, 5].tolist() == [1.9, 2.1] and given[:, 1].tolist() == [0.0, 1.0]
    none = D.demographic_features(pd.DataFrame({"age_years": [30.0]}))
    assert np.isnan(none[0, 1:]).all()


def test_demographics_regressor_uses_its_config():
    cfg = D.DemographicsConfig(max_iter=7, learning_rate=0.2, max_depth=2, min_samples_leaf=3, seed=5)
    df = pd.DataFrame({"age_years": np.arange(20.0), "sex": ["M", "F"] * 10, "height_cm": 170.0, "weight_kg": 70.0})
    y = np.where(df["sex"] == "M", 150.0, 110.0)
    with pytest.raises(RuntimeError, match="fit the demographics model"):
        D.DemographicsRegressor(cfg).predict(df)
    reg = D.DemographicsRegressor(cfg).fit(df, y)
    p = reg._model.get_params()
    assert (p["loss"], p["max_iter"], p["learning_rate"], p["max_depth"], p["min_samples_leaf"], p["random_state"],
            p["early_stopping"]) == ("absolute_error", 7, 0.2, 2, 3, 5, False)
    assert reg._model.n_iter_ == 7  # no early stopping
    pred = reg.predict(df)
    assert pred[0] > pred[1]  # men (150 g) above women (110 g)
    assert D.DemographicsConfig() == D.DemographicsConfig(max_iter=200, learning_rate=0.05, max_depth=3,
                                                          min_samples_leaf=20, seed=0)


def test_demographics_spec_fits_on_train_and_val_rows():
    n = 60
    df = pd.DataFrame({"age_years": np.tile([40.0, 60.0], n // 2), "sex": ["M", "F"] * (n // 2),
                       "height_cm": 170.0, "weight_kg": 70.0,
                       "lvm_g": np.where(np.arange(n) % 2 == 0, 150.0, 110.0)})
    df.loc[50:, "lvm_g"] = 1000.0  # test rows: never seen in training
    data = CohortData.from_frame(df)
    spec = D.DemographicsSpec(name="demo", config=D.DemographicsConfig(max_iter=50, learning_rate=0.5,
                                                                       min_samples_leaf=5))
    fitted = spec.fit(data, Split(0, np.arange(0, 40), np.arange(40, 50), np.arange(50, 60)))
    pred = fitted.predict(data, [50, 51])
    assert pred[0] == pytest.approx(150.0, abs=1.0) and pred[1] == pytest.approx(110.0, abs=1.0)
    assert D.DemographicsSpec._field_from_plain("config", {"max_iter": 3}) == D.DemographicsConfig(max_iter=3)
    assert not D.DemographicsSpec.bundleable


def test_lvh_metrics_f1_when_sensitivity_plus_ppv_is_below_one():
    # tp 1, fn 3, fp 3, tn 1: sensitivity = PPV = 1/4, F1 = 1/4 (defined although sens + PPV < 1)
    m = C.lvh_metrics([0.0] * 8, [True, False, False, False, True, True, True, False], [1, 1, 1, 1, 0, 0, 0, 0])
    assert m["sensitivity"] == 0.25 and m["ppv"] == 0.25 and m["f1"] == pytest.approx(0.25)
    # labels and calls at exactly 0.5 are negative (> 0.5 is the rule for numeric labels)
    half = C.lvh_metrics([1.0, 2.0, 3.0], [0.5, 1.0, 1.0], [0.5, 1.0, 0.0])
    assert half["sensitivity"] == 1.0 and half["specificity"] == 0.5 and half["c_statistic"] == 0.5


def test_fitted_models_keep_their_spec_and_info():
    data, _, _ = _linear_cohort()
    split = Split(0, np.arange(0, 25), np.arange(25, 30), np.arange(30, 40))
    fitted = C.CriteriaLinearSpec(name="criteria_linear").fit(data, split)
    arrays, meta = fitted.state()
    assert meta["info"] == {"n_train": 30} and arrays["medians"].dtype == np.float64
    assert C.CriteriaLinearSpec.load_fitted(fitted.spec, arrays, meta).info == {"n_train": 30}
    assert C.CriteriaLinearSpec._field_from_plain("seed", 3) == 3
    assert D.DemographicsSpec._field_from_plain("seed", 4) == 4
    demo = D.DemographicsSpec(name="d", config=D.DemographicsConfig(max_iter=5, min_samples_leaf=2))
    assert demo.fit(data, split).spec is demo
