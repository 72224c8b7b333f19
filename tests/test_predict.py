"""`elvmass predict` on genuine GE MUSE exports (../shared/data/vendor/ge-muse-xml, from the
MIT-licensed musePHI package) with a bundle trained on the built-in synthetic cohort."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from elvmass.cli import app


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    from elvmass.experiments.final import train_bundle
    from elvmass.cohort import build_cohort, write_manifest
    from elvmass.synth import SynthConfig, generate_cohort

    root = tmp_path_factory.mktemp("predict")
    synth = generate_cohort(SynthConfig(n=70, seed=3), root / "synth")
    manifest = write_manifest(build_cohort(synth.ecg_dir, synth.imaging_csv).manifest, root / "manifest.csv")
    return train_bundle(manifest, root / "model", "quick", progress=False)


@pytest.fixture()
def muse_files(shared_data):
    files = sorted((shared_data / "vendor" / "ge-muse-xml").glob("*.xml"))
    assert [f.name for f in files] == ["muse_ecg1.xml", "muse_ecg2.xml"]
    return files


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_predict_real_muse_files_with_a_corrupt_one(bundle_dir, muse_files, tmp_path):
    corrupt = tmp_path / "corrupt.xml"
    corrupt.write_text("<RestingECG><Waveform>not base64 at all")
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(muse_files[0]), str(corrupt),
                                   str(muse_files[1]), "--json"])
    assert res.exit_code == 1, res.output  # one file failed: reported, skipped, and said in the status
    lines = _json_lines(res.stdout)
    assert [line["path"] for line in lines] == [str(muse_files[0]), str(muse_files[1])]
    for line in lines:
        assert set(line) >= {"path", "lvm_g", "lvmi_g_m2", "lvh", "model", "flags"}
        # both files: a 60-year-old man (PatientDemographics), no height or weight stored
        assert line["age_years"] == 60.0 and line["sex"] == "M"
        assert line["model"] == "elvmassnet_male"
        assert 70.0 < line["lvm_g"] < 300.0, line
        assert "imputed:height_cm" in line["flags"] and "imputed:weight_kg" in line["flags"]
        assert "imputed:age_years" not in line["flags"]
        assert "no_bsa" in line["flags"]
        assert line["lvmi_g_m2"] is None and line["lvh"] is None
    assert "corrupt.xml" in res.stderr and "skipped" in res.stderr
    assert "Traceback" not in res.output
    # muse_ecg1 is a genuine "Ventricular-paced rhythm": predicted, but flagged as outside the cohort
    assert "outside_training_population:paced" in lines[0]["flags"]
    assert not any(f.startswith("outside_training_population") for f in lines[1]["flags"])


def test_flags_fill_missing_demographics_and_give_lvmi(bundle_dir, muse_files, tmp_path):
    out = tmp_path / "preds.csv"
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), *map(str, muse_files), "--height-cm", "180",
                                   "--weight-kg", "80", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    lines = _json_lines(res.stdout)
    bsa = math.sqrt(180 * 80 / 3600)
    for line in lines:
        assert line["lvmi_g_m2"] == pytest.approx(line["lvm_g"] / bsa, abs=0.06)
        assert line["lvh"] == (line["lvm_g"] / bsa > 72.0)
        assert not any(f.startswith("imputed:") for f in line["flags"])
    table = pd.read_csv(out)
    assert list(table["path"]) == [str(f) for f in muse_files]
    assert table["lvm_g"].tolist() == pytest.approx([line["lvm_g"] for line in lines])
    # overriding sex switches to the female model
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(muse_files[0]), "--sex", "F", "--json"])
    assert _json_lines(res.stdout)[0]["model"] == "elvmassnet_female"


def test_predict_folder_and_all_bad(bundle_dir, muse_files, tmp_path):
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(muse_files[0].parent)])
    assert res.exit_code == 0, res.output
    assert "muse_ecg1.xml" in res.stdout and "muse_ecg2.xml" in res.stdout
    bad = tmp_path / "bad.xml"
    bad.write_text("garbage")
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(bad)])
    assert res.exit_code == 1 and "bad.xml" in res.stderr
    res = CliRunner().invoke(app, ["predict", "--model", str(tmp_path), str(muse_files[0])])
    assert res.exit_code == 1 and "not a model bundle" in res.stderr


def test_predict_library_matches_cli(bundle_dir, muse_files):
    from elvmass.bundle import load_bundle
    from elvmass.predict import predict_files

    preds, errors = predict_files(load_bundle(bundle_dir), muse_files)
    assert not errors
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), *map(str, muse_files), "--json"])
    assert [round(p.lvm_g, 1) for p in preds] == [line["lvm_g"] for line in _json_lines(res.stdout)]


def test_predict_reproduces_the_training_pipeline_exactly(bundle_dir):
    """predict on a training file, with the manifest's demographics, gives exactly what the study
    pipeline (cached views, scalar table, the model's own scaler) gives for that row."""

    from elvmass.bundle import load_bundle
    from elvmass.experiments.study import load_study_manifest
    from elvmass.features import cohort_data
    from elvmass.predict import predict_files

    bundle = load_bundle(bundle_dir)
    df, _ = load_study_manifest(bundle_dir.parent / "manifest.csv")
    feats = cohort_data(df.head(6), bundle.signal_config, cache_dir=bundle_dir.parent / ".elvmass-cache")
    m = feats.manifest
    assert set(m["sex"]) == {"M", "F"}
    for i, row in m.iterrows():
        (pred,), errors = predict_files(bundle, [row.ecg_path], age_years=row.age_years, height_cm=row.height_cm,
                                        weight_kg=row.weight_kg)
        assert not errors
        assert pred.model == {"M": "elvmassnet_male", "F": "elvmassnet_female"}[row.sex]
        scaler = bundle.scalers[pred.model]
        demo, par, _ = scaler.transform(feats.scalars.iloc[[i]])
        expected = scaler.to_grams(bundle.run(pred.model, feats.views(bundle.signal_config)[[i]], demo, par))[0]
        assert pred.lvm_g == pytest.approx(expected, abs=1e-6)
        assert pred.lvmi_g_m2 == pytest.approx(expected / row.bsa_m2, rel=1e-9)


def test_a_1000_hz_dicom_is_resampled_to_the_bundle_rate(bundle_dir, shared_data):
    """The genuine DICOM waveform is 1000 Hz; the bundle was trained at its own view rate. The view is
    cut at the bundle's rate, so the prediction matches the same ECG given at 500 or 250 Hz."""
    from elvmass import read_ecg
    from elvmass.bundle import load_bundle
    from elvmass.predict import predict_record

    bundle = load_bundle(bundle_dir)
    rec = read_ecg(shared_data / "vendor" / "dicom" / "waveform_ecg.dcm")
    assert rec.fs_hz == 1000.0 and rec.patient.sex == "F"
    p1000 = predict_record(bundle, rec)
    assert p1000.model == "elvmassnet_female" and 40.0 < p1000.lvm_g < 250.0
    for fs in (500.0, 250.0):
        assert predict_record(bundle, rec.resampled(fs)).lvm_g == pytest.approx(p1000.lvm_g, abs=0.5)
