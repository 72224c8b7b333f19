"""Conformal prediction intervals and the LVH probability (elvmass.evaluate.conformal), their place in the
study, the bundle and `elvmass predict`, and the model card."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from elvmass.cli import app
from elvmass.evaluate import conformal


def _data(seed: int, n: int, noise: float = 0.1):
    rng = np.random.default_rng(seed)
    y_hat = rng.uniform(70, 220, n)
    y = y_hat * (1 + rng.normal(0, noise, n))  # relative noise: what the normalised score assumes
    sex = rng.choice(np.array(["M", "F"], dtype=object), n)
    return y, y_hat, sex


@pytest.mark.parametrize("score", conformal.SCORES)
def test_split_conformal_coverage_is_nominal_within_binomial_error(score):
    """Over 40 seeds, 300 calibration and 2,000 test cases each: the mean coverage is within 3 binomial
    standard errors of 90 %, for men and for women separately (Mondrian)."""
    cov = {"M": [], "F": []}
    n_test = 2000
    for seed in range(40):
        y, y_hat, sex = _data(seed, 300 + n_test)
        cal = conformal.calibrate(y[:300], y_hat[:300], sex[:300], score)
        lo, hi = cal.interval(y_hat[300:], sex[300:], 0.9)
        inside = (y[300:] >= lo) & (y[300:] <= hi)
        for s in ("M", "F"):
            cov[s].append(inside[sex[300:] == s].mean())
    for s, values in cov.items():
        n_total = 40 * n_test / 2
        se = math.sqrt(0.9 * 0.1 / n_total)
        # split conformal guarantees >= 0.9 on average over calibration draws, and <= 0.9 + 1/(n_cal + 1)
        assert 0.9 - 3 * se <= np.mean(values) <= 0.9 + 1 / 151 + 3 * se, (s, np.mean(values))


def test_intervals_always_contain_the_point_estimate():
    rng = np.random.default_rng(3)
    y_hat = rng.uniform(60, 250, 500)
    y = y_hat + 40  # a biased model: every residual positive, so the lower score quantile is above 0
    cal = conformal.calibrate(y, y_hat, np.array(["M"] * 500, dtype=object))
    for level in (0.5, 0.8, 0.9, 0.95):
        lo, hi = cal.interval(y_hat, np.array(["M"] * 500, dtype=object), level)
        assert np.all(lo <= y_hat) and np.all(y_hat <= hi)


def test_same_intervals_as_mapie_split_conformal():
    """MAPIE's SplitConformalRegressor (prefit) on the same calibration data gives the same interval ends:
    absolute and gamma (= our normalised) scores."""
    from mapie.regression import SplitConformalRegressor
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(7)
    x = rng.uniform(1, 3, (600, 1))
    y = 60 * x[:, 0] * (1 + rng.normal(0, 0.1, 600))
    est = LinearRegression().fit(x[:200], y[:200])
    for score, mapie_score in (("absolute", "absolute"), ("normalised", "gamma")):
        m = SplitConformalRegressor(est, confidence_level=0.9, conformity_score=mapie_score, prefit=True)
        m.conformalize(x[200:400], y[200:400])
        _, bounds = m.predict_interval(x[400:])
        cal = conformal.calibrate(y[200:400], est.predict(x[200:400]), np.array(["M"] * 200, dtype=object), score)
        lo, hi = cal.interval(est.predict(x[400:]), np.array(["M"] * 200, dtype=object), 0.9)
        np.testing.assert_allclose(lo, bounds[:, 0, 0], rtol=1e-9)
        np.testing.assert_allclose(hi, bounds[:, 1, 0], rtol=1e-9)


def test_too_few_calibration_cases_give_an_infinite_interval_not_a_made_up_one():
    cal = conformal.calibrate(np.array([100.0, 110, 120]), np.array([105.0, 108, 125]), np.array(["F"] * 3, dtype=object))
    lo, hi = cal.interval([100.0], ["F"], 0.9)
    assert math.isinf(hi[0]) or math.isinf(lo[0])


def test_lvh_probability_is_the_predictive_distribution_share_above_the_cutoff():
    # hand case: scores -0.2, 0, +0.2 (normalised); prediction 100 g, BSA 1.5 m², woman (55 g/m² -> 82.5 g)
    cal = conformal.Calibration("normalised", {"F": np.array([-0.2, 0.0, 0.2])})
    p = conformal.lvh_probability(cal, [110.0], ["F"], [1.5], {"M": 72.0, "F": 55.0})
    assert p[0] == pytest.approx(1.0)  # 88, 110, 132 g: all above 82.5 g
    p = conformal.lvh_probability(cal, [90.0], ["F"], [1.5], {"M": 72.0, "F": 55.0})
    assert p[0] == pytest.approx(2 / 3)  # 72, 90, 108 g against 82.5 g


def test_probability_calibration_metrics_by_hand():
    out = conformal.probability_calibration(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.6, 0.4]), n_bins=2)
    assert out["brier"] == pytest.approx((0.01 + 0.01 + 0.16 + 0.16) / 4)
    # bins [0, .5): p .1 .4 observed 0 -> |0.25 - 0|; [.5, 1]: p .9 .6 observed 1 -> |0.75 - 1|
    assert out["ece"] == pytest.approx(0.5 * 0.25 + 0.5 * 0.25)


@pytest.fixture(scope="module")
def calibrated_bundle(tmp_path_factory):
    from elvmass.cohort import build_cohort, write_manifest
    from elvmass.synth import SynthConfig, generate_cohort

    root = tmp_path_factory.mktemp("conformal")
    synth = generate_cohort(SynthConfig(n=160, seed=11), root / "synth")
    manifest = write_manifest(build_cohort(synth.ecg_dir, synth.imaging_csv).manifest, root / "manifest.csv")
    res = CliRunner().invoke(app, ["train", "--cohort", str(manifest), "--out", str(root / "model"), "--preset", "quick",
                                   "--no-sex-specific", "--calibration-fraction", "0.3", "--quiet"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["train", "--cohort", str(manifest), "--out", str(root / "plain"), "--preset", "quick",
                                   "--no-sex-specific", "--calibration-fraction", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    return root


def test_predict_json_on_real_muse_files_gives_intervals(calibrated_bundle, shared_data):
    files = sorted((shared_data / "vendor" / "ge-muse-xml").glob("*.xml"))
    res = CliRunner().invoke(app, ["predict", "--model", str(calibrated_bundle / "model"), *map(str, files), "--json"])
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 2
    for line in lines:
        assert line["level"] == 0.9
        assert line["lvm_g_low"] <= line["lvm_g"] <= line["lvm_g_high"]
        assert 5 < line["lvm_g_high"] - line["lvm_g_low"] < 300  # a real, finite width in grams
        assert "no_interval" not in line["flags"]


def test_a_bundle_without_calibration_refuses_to_invent_intervals(calibrated_bundle, shared_data):
    f = shared_data / "vendor" / "ge-muse-xml" / "muse_ecg2.xml"
    res = CliRunner().invoke(app, ["predict", "--model", str(calibrated_bundle / "plain"), str(f), "--json"])
    (line,) = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert line["lvm_g_low"] is None and line["lvm_g_high"] is None and line["level"] is None
    assert "no_interval" in line["flags"]


def test_model_card_is_in_the_bundle_hash_checked_and_printed(calibrated_bundle):
    model = calibrated_bundle / "model"
    hashes = json.loads((model / "hashes.json").read_text())["files"]
    assert "model_card.md" in hashes
    res = CliRunner().invoke(app, ["model-info", str(model)])
    assert res.exit_code == 0, res.output
    for heading in ("## Intended use", "## Training cohort", "## Uncertainty", "## Exclusions", "## Known limits",
                    "## Versions"):
        assert heading in res.stdout
    assert "Synthetic training data" in res.stdout  # trained on elvmass synth: said plainly
    assert "paced rhythm" in res.stdout
    import shutil

    copy = calibrated_bundle / "tampered"
    shutil.copytree(model, copy)
    (copy / "model_card.md").write_text("# a different card\n")
    res = CliRunner().invoke(app, ["model-info", str(copy)])
    assert res.exit_code == 1 and "model_card.md: SHA-256" in res.output
