"""External validation and local recalibration (issue #12): `elvmass validate`, `elvmass recalibrate`.

A small synthetic internal cohort trains the session's quick bundle (conftest ``trained_bundle``); a small
synthetic external site (`--profile external`: echo LV mass, another cart) is validated against it.
Numbers from them show the pipeline, not clinical accuracy. Expectations are computed here from the
manifest and with NumPy's own least squares (``np.polyfit``), not with the code under test.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from elvmass.cli import app


@pytest.fixture(scope="module")
def external_manifest(tmp_path_factory):
    """40 external patients (echo LV mass); a few rows relabelled ct / mr so the manifest mixes sources."""
    from elvmass.cohort import build_cohort, write_manifest
    from elvmass.synth import SynthConfig, generate_cohort

    root = tmp_path_factory.mktemp("external")
    synth = generate_cohort(SynthConfig(n=40, seed=11, profile="external"), root / "synth")
    df = build_cohort(synth.ecg_dir, synth.imaging_csv).manifest.reset_index(drop=True)
    df.loc[0:4, "lvm_source"] = "ct"
    df.loc[5:9, "lvm_source"] = "mr"
    return write_manifest(df, root / "manifest.csv")


@pytest.fixture(scope="module")
def validated(trained_bundle, external_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("val") / "val"
    res = CliRunner().invoke(app, ["validate", "--model", str(trained_bundle), "--cohort", str(external_manifest), "--out",
                                   str(out), "--lvm-conversion", "-4,0.9", "--calibration-sizes", "6,12", "--draws", "6",
                                   "--quiet"])
    assert res.exit_code == 0, res.output + res.stderr
    return out


def test_validation_json_has_the_issue_keys_and_converts_only_echo_rows(validated, external_manifest):
    v = json.loads((validated / "validation.json").read_text())
    manifest = pd.read_csv(external_manifest)
    n_echo = int((manifest.lvm_source == "echo").sum())
    assert v["lvm_conversion"] == {**v["lvm_conversion"], "name": "user", "a": -4.0, "b": 0.9, "n_converted": n_echo}
    assert n_echo == len(manifest) - 10
    for name in ("elvmassnet", "elvmassnet_male", "elvmassnet_female", "elvmassnet_sex_specific"):
        u = v["models"][name]["uncalibrated"]
        assert {"mae_g", "mape_pct", "bias_g", "lvh", "by_sex"} <= set(u)
        for k in ("6", "12"):
            r = v["models"][name]["recalibrated"][k]
            assert {"mae_g", "mape_pct", "c_statistic"} <= set(r) and {"mean", "sd"} <= set(r["mae_g"])
    assert "flagged" in v["shift"] and v["shift"]["available"] is True
    pred = pd.read_csv(validated / "predictions.csv")
    truth = dict(zip(manifest.patient_id.astype(str), manifest.lvm_g))
    src = dict(zip(manifest.patient_id.astype(str), manifest.lvm_source))
    for pid, got in zip(pred.patient_id.astype(str), pred.lvm_g):
        want = -4.0 + 0.9 * truth[pid] if src[pid] == "echo" else truth[pid]  # ct and mr rows as measured
        assert got == pytest.approx(want, abs=1e-6), pid
    # the uncalibrated MAE is the mean absolute difference of the two predictions.csv columns
    assert v["models"]["elvmassnet"]["uncalibrated"]["mae_g"] == pytest.approx(
        float(np.mean(np.abs(pred.elvmassnet_lvm_g - pred.lvm_g))), abs=0.01)
    assert (validated / "report.html").read_text().count("<img") >= 4
    assert "lvm_ct = -4 + 0.9 * lvm_echo" in (validated / "report.html").read_text()


def test_no_case_scored_by_a_calibration_that_used_it():
    """By construction: every draw scores exactly the cases it did not fit on; the per-case mean is over
    those draws only (recomputed here with np.polyfit)."""
    from elvmass.evaluate.recalibration import cross_fitted_recalibration

    rng = np.random.default_rng(4)
    n = 60
    y = rng.uniform(80, 220, n)
    pred = 0.7 * y + 20 + rng.normal(0, 8, n)
    pred[[3, 17]] = np.nan  # unscorable cases never enter a draw
    sex = np.array(["M", "F"] * 30, dtype=object)
    res = cross_fitted_recalibration(y, pred, sex, 12, n_draws=9, seed=2, per_sex=True, keep_draws=True)
    finite = set(np.flatnonzero(np.isfinite(pred)).tolist())
    sums, counts = np.zeros(n), np.zeros(n)
    for d in res["draws"]:
        cal, scored = set(d["calibration_rows"].tolist()), set(d["scored_rows"].tolist())
        assert len(cal) == 12 and not cal & scored and cal | scored == finite
        assert {sex[i] for i in cal} == {"M", "F"}
        for s in ("M", "F"):  # the per-sex lines are least squares on that sex's drawn cases only
            rows = sorted(i for i in cal if sex[i] == s)
            slope, intercept = np.polyfit(pred[rows], y[rows], 1)
            assert d["calibration"].by_sex[s] == pytest.approx((intercept, slope), rel=1e-6, abs=1e-6)
        for i in scored:
            slope, intercept = d["calibration"].by_sex[sex[i]][1], d["calibration"].by_sex[sex[i]][0]
            sums[i] += intercept + slope * pred[i]
            counts[i] += 1
    got = res["per_case_lvm_g"]
    for i in range(n):
        if counts[i]:
            assert got[i] == pytest.approx(sums[i] / counts[i])
        else:
            assert np.isnan(got[i])
    assert res["mae_g"]["n_draws"] == 9


@pytest.fixture(scope="module")
def recalibrated(trained_bundle, external_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("recal") / "model-recal"
    res = CliRunner().invoke(app, ["recalibrate", "--model", str(trained_bundle), "--cohort", str(external_manifest),
                                   "--out", str(out), "--lvm-conversion", "none", "--quiet"])
    assert res.exit_code == 0, res.output + res.stderr
    return out


def test_recalibrated_bundle_predicts_the_linear_map_of_the_original(trained_bundle, recalibrated, external_manifest):
    manifest = pd.read_csv(external_manifest)
    files = [str(external_manifest.parent / p) for p in manifest.ecg_path[:4]]
    lines = json.loads((recalibrated / "recalibration.json").read_text())["models"]

    def run(model):
        res = CliRunner().invoke(app, ["predict", "--model", str(model), *files, "--json"])
        assert res.exit_code in (0, 1), res.output
        return {d["path"]: d for d in map(json.loads, res.stdout.splitlines())}

    orig, new = run(trained_bundle), run(recalibrated)
    assert orig and set(orig) == set(new)
    for path, o in orig.items():
        n = new[path]
        line = lines[o["model"]]
        assert n["model"] == o["model"] and "recalibrated" in n["flags"] and "recalibrated" not in o["flags"]
        assert n["lvm_g"] == pytest.approx(line["intercept_g"] + line["slope"] * o["lvm_g"], abs=0.1 + 0.05 * abs(line["slope"]))
    card = CliRunner().invoke(app, ["model-info", str(recalibrated)])
    assert card.exit_code == 0 and "## Local recalibration" in card.stdout


def test_recalibration_line_is_least_squares_of_true_on_predicted(recalibrated, trained_bundle, external_manifest, tmp_path):
    """The stored line of the male model is np.polyfit of the measured (unconverted) mass on its predictions."""
    out = tmp_path / "v"
    res = CliRunner().invoke(app, ["validate", "--model", str(trained_bundle), "--cohort", str(external_manifest),
                                   "--out", str(out), "--lvm-conversion", "none", "--recalibrate", "none", "--quiet"])
    assert res.exit_code == 0, res.output + res.stderr
    pred = pd.read_csv(out / "predictions.csv")
    men = pred[pred.sex == "M"]
    slope, intercept = np.polyfit(men.elvmassnet_male_lvm_g, men.lvm_g, 1)
    line = json.loads((recalibrated / "recalibration.json").read_text())["models"]["elvmassnet_male"]
    # predictions.csv rounds to 0.01 g, and the tiny quick model's predictions barely spread: 2 % tolerance
    assert line["slope"] == pytest.approx(slope, rel=0.02) and line["intercept_g"] == pytest.approx(intercept, rel=0.02)


def test_tampered_calibration_is_refused(recalibrated, external_manifest, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(recalibrated, copy)
    f = copy / "recalibration.json"
    d = json.loads(f.read_text())
    d["models"]["elvmassnet"]["slope"] = 2.0
    f.write_text(json.dumps(d))
    ecg = str(external_manifest.parent / pd.read_csv(external_manifest).ecg_path[0])
    res = CliRunner().invoke(app, ["predict", "--model", str(copy), ecg])
    assert res.exit_code == 2 and "recalibration.json: SHA-256 does not match" in res.stderr
    (copy / "recalibration.json").unlink()
    res = CliRunner().invoke(app, ["predict", "--model", str(copy), ecg])
    assert res.exit_code == 2 and "recalibration.json: file listed in hashes.json is missing" in res.stderr


def test_validate_reports_each_bad_row_and_scores_the_rest(trained_bundle, external_manifest, tmp_path):
    df = pd.read_csv(external_manifest)
    df.loc[0, "ecg_path"] = "ecgs/missing.xml"
    df.loc[1, "sex"] = "X"
    df.loc[2, "lvm_g"] = 900.0
    bad = tmp_path / "bad.csv"
    df.assign(ecg_path=[str(external_manifest.parent / p) for p in df.ecg_path]).to_csv(bad, index=False)
    out = tmp_path / "v"
    res = CliRunner().invoke(app, ["validate", "--model", str(trained_bundle), "--cohort", str(bad), "--out", str(out),
                                   "--lvm-conversion", "none", "--recalibrate", "none", "--quiet"])
    assert res.exit_code == 1, res.output + res.stderr
    err = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 3
    assert "row 0" in err[0] and "ECG file not found" in err[0]
    assert "row 1" in err[1] and "sex" in err[1]
    assert "row 2" in err[2] and "lvm_g 900" in err[2]
    v = json.loads((out / "validation.json").read_text())
    assert v["n"] == len(df) - 3 and v["n_rows"] == len(df) and v["n_skipped"]["manifest_rows"] == 3


def test_echo_rows_without_conversion_is_one_line(trained_bundle, external_manifest, tmp_path):
    res = CliRunner().invoke(app, ["validate", "--model", str(trained_bundle), "--cohort", str(external_manifest),
                                   "--out", str(tmp_path / "v"), "--quiet"])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "lvm_source=echo" in res.stderr and "--lvm-conversion a,b" in res.stderr
    res = CliRunner().invoke(app, ["validate", "--model", str(trained_bundle), "--cohort", str(external_manifest),
                                   "--out", str(tmp_path / "v"), "--lvm-conversion", "devereux"])
    assert res.exit_code == 2 and "no named conversion ships" in res.stderr


def test_older_bundle_without_cohort_summary_gives_one_clear_line(trained_bundle, external_manifest, tmp_path):
    from elvmass.bundle import sha256_file

    old = tmp_path / "old-model"
    shutil.copytree(trained_bundle, old)
    cfg = json.loads((old / "bundle.json").read_text())
    cfg["training_cohort"].pop("distribution")  # what `elvmass train` wrote before issue 12
    (old / "bundle.json").write_text(json.dumps(cfg))
    hashes = json.loads((old / "hashes.json").read_text())
    hashes["files"]["bundle.json"] = sha256_file(old / "bundle.json")
    (old / "hashes.json").write_text(json.dumps(hashes))
    out = tmp_path / "v"
    res = CliRunner().invoke(app, ["validate", "--model", str(old), "--cohort", str(external_manifest), "--out", str(out),
                                   "--lvm-conversion", "none", "--recalibrate", "none", "--quiet"])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no training-cohort distribution summary" in lines[0] and "retrain" in lines[0]
    v = json.loads((out / "validation.json").read_text())
    assert v["shift"]["available"] is False and v["models"]["elvmassnet"]["uncalibrated"]["n"] == v["n"]


@pytest.mark.slow
def test_demo_external_runs_end_to_end(tmp_path):
    # --workers 2: both cohorts are simulated and their manifests built in two processes
    res = CliRunner().invoke(app, ["demo", "--external", "--n", "70", "--n-external", "130", "--preset", "quick",
                                   "--workers", "2", "--out", str(tmp_path / "demo"), "--quiet"])
    assert res.exit_code == 0, res.output + res.stderr
    v = json.loads((tmp_path / "demo" / "validation" / "validation.json").read_text())
    assert v["lvm_conversion"]["n_converted"] == v["n"]
    rec = v["models"]["elvmassnet"]["recalibrated"]
    assert v["n"] < 201 and set(rec) == {"25", "50", "100", "200"}
    assert all("mae_g" in rec[k] for k in ("25", "50", "100")) and "too few to score" in rec["200"]["skipped"]
    assert (tmp_path / "demo" / "model-recalibrated" / "recalibration.json").is_file()


def test_validate_scores_a_recalibrated_bundle_as_predict_does(recalibrated, validated, external_manifest, tmp_path):
    out = tmp_path / "v"
    res = CliRunner().invoke(app, ["validate", "--model", str(recalibrated), "--cohort", str(external_manifest),
                                   "--out", str(out), "--lvm-conversion", "none", "--recalibrate", "none", "--quiet"])
    assert res.exit_code == 0, res.output + res.stderr
    new, orig = pd.read_csv(out / "predictions.csv"), pd.read_csv(validated / "predictions.csv")
    assert json.loads((out / "validation.json").read_text())["bundle_recalibrated"] is True
    lines = json.loads((recalibrated / "recalibration.json").read_text())["models"]
    for name in ("elvmassnet", "elvmassnet_male"):
        line = lines[name]
        want = line["intercept_g"] + line["slope"] * orig[f"{name}_lvm_g"]
        got = new[f"{name}_lvm_g"]
        ok = want.notna()
        assert ok.sum() > 5 and np.allclose(got[ok], want[ok], atol=0.02 + 0.01 * abs(line["slope"]))
