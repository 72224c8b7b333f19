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
def bundle_dir(trained_bundle):
    """The session's shared bundle (tests/conftest.py: 70 patients, seed 3, quick preset, trained once)."""
    return trained_bundle


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
    # overriding sex against the file (a man) needs --force-sex (issue 17 item 17), then uses the female model
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(muse_files[0]), "--sex", "F", "--json"])
    assert res.exit_code == 1 and _json_lines(res.stdout) == [] and "--force-sex" in res.stderr
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(muse_files[0]), "--sex", "F",
                                   "--force-sex", "--json"])
    line = _json_lines(res.stdout)[0]
    assert line["model"] == "elvmassnet_female" and "override:sex" in line["flags"]


def test_predict_folder_and_all_bad(bundle_dir, muse_files, tmp_path):
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(muse_files[0].parent)])
    assert res.exit_code == 0, res.output
    assert "muse_ecg1.xml" in res.stdout and "muse_ecg2.xml" in res.stdout
    bad = tmp_path / "bad.xml"
    bad.write_text("garbage")
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(bad)])
    assert res.exit_code == 1 and "bad.xml" in res.stderr
    res = CliRunner().invoke(app, ["predict", "--model", str(tmp_path), str(muse_files[0])])
    assert res.exit_code == 2 and "not a model bundle" in res.stderr  # the command line is unusable: 2


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
    usable = [a.usable for a in feats.analyses(bundle.signal_config)]
    assert sum(usable) >= 3  # predict refuses the others (a noisy synthetic recording), training kept them flagged
    for i, row in m.iterrows():
        if not usable[i]:
            continue
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
    for fs in (500.0, 400.0, 250.0):
        assert predict_record(bundle, rec.resampled(fs)).lvm_g == pytest.approx(p1000.lvm_g, abs=0.5)
    # below 400 Hz pacing cannot be judged from the waveform: said, not blocking
    p250 = predict_record(bundle, rec.resampled(250.0))
    assert "pacing_not_checked" in p250.flags and not any(f.startswith("noisy_lead") for f in p250.flags)


# ------------------------------------------------------------------ issue 17: what a new user runs into

DICOM = ("vendor", "dicom", "waveform_ecg.dcm")  # Mortara ELI 250: a 42-year-old woman, no height/weight


@pytest.mark.parametrize("options,named", [
    (["--height-cm", "1.75", "--weight-kg", "70"], "1.75 looks like metres (= 175 cm)"),
    (["--height-cm", "5000"], "height_cm 5000 is outside 120 – 220 cm"),
    (["--age", "-5"], "age_years -5 is outside 18 – 110 years"),
    (["--age", "200"], "age_years 200 is outside 18 – 110 years"),
    (["--weight-kg", "500"], "500 looks like pounds (= 227 kg)"),   # 500 lb = 226.8 kg
    (["--height-cm", "69", "--weight-kg", "154"], "69 looks like inches (= 175 cm)"),  # 69 in = 175.3 cm
    (["--sex", "1"], "sex '1' is a number"),
])
def test_item1_implausible_demographics_are_refused_on_the_cli(bundle_dir, shared_data, options, named):
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(shared_data.joinpath(*DICOM)),
                                   "--json", *options])
    assert res.exit_code == 2, res.output  # a usage error: nothing predicted
    assert named in res.stderr and "Traceback" not in res.output
    assert _json_lines(res.stdout) == []


def test_item1_the_python_api_applies_the_same_check(bundle_dir, shared_data):
    from elvmass.bundle import load_bundle
    from elvmass.errors import InputValueError
    from elvmass.predict import predict_files, predict_record

    bundle = load_bundle(bundle_dir)
    path = shared_data.joinpath(*DICOM)
    with pytest.raises(InputValueError, match="1.75 looks like metres"):
        predict_record(bundle, path, height_cm=1.75, weight_kg=70)
    with pytest.raises(ValueError, match="age_years 200"):  # also a ValueError, as the service expects
        predict_files(bundle, [path], age_years=200)
    ok = predict_record(bundle, path, height_cm=175, weight_kg=70)
    assert 30 <= ok.lvm_g <= 600 and ok.lvmi_g_m2 == pytest.approx(ok.lvm_g / math.sqrt(175 * 70 / 3600))


def test_item1_a_files_own_implausible_height_is_not_used_and_an_absurd_mass_is_flagged(bundle_dir, shared_data):
    import dataclasses

    from elvmass import read_ecg
    from elvmass.bundle import load_bundle
    from elvmass.predict import predict_record

    bundle = load_bundle(bundle_dir)
    rec = read_ecg(shared_data.joinpath(*DICOM))
    rec = dataclasses.replace(rec, patient=dataclasses.replace(rec.patient, height_cm=1.65, weight_kg=60.0))
    pred = predict_record(bundle, rec)
    assert "implausible:height_cm" in pred.flags and "imputed:height_cm" in pred.flags
    assert pred.height_cm is None and pred.lvmi_g_m2 is None and pred.lvh is None
    # the model's output is checked too: a bundle whose target scale puts the mass at -850 g (as a model
    # far outside its inputs could) gets a flag and no LVH call, never a silent negative mass
    import copy

    shifted = copy.deepcopy(bundle)
    shifted.scalers[pred.model].target_mean_g -= 1000.0
    bad = predict_record(shifted, rec, height_cm=170, weight_kg=60)
    assert bad.lvm_g == pytest.approx(predict_record(bundle, rec, height_cm=170, weight_kg=60).lvm_g - 1000.0)
    assert "implausible_output:lvm_g" in bad.flags and bad.lvh is None


def test_item2_a_negated_lbbb_statement_is_not_lbbb_and_the_reason_is_wide_qrs(bundle_dir, shared_data):
    # 129DYPRG says "Nonspecific intraventricular conduction delay QRSd >115mS, not LBBB/RBBB"; its
    # globalmeasurements give QRS 135 ms, so the cohort reason is wide QRS, not LBBB
    path = shared_data / "vendor" / "philips-xml" / "129DYPRG.XML"
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(path), "--json"])
    assert res.exit_code == 0, res.output
    line = _json_lines(res.stdout)[0]
    assert "outside_training_population:wide_qrs" in line["flags"]
    assert not any(f.endswith(("lbbb", "rbbb")) for f in line["flags"])
    assert line["outside_training_population"] == "wide_qrs: device QRS 135 ms"


def _noisy_ptbxl_npy(shared_data, tmp_path, name="noisy.npy"):
    """PTB-XL record 1 (a clean sinus ECG) with 0.3 mV white noise added: what a loose electrode gives."""
    import numpy as np

    from elvmass import read_ecg

    rec = read_ecg(shared_data / "ptbxl-sample" / "records500" / "00000" / "00001_hr")
    noisy = rec.signal_mv + np.random.default_rng(0).normal(0.0, 0.3, rec.signal_mv.shape)
    out = tmp_path / name
    np.save(out, noisy)
    return out


def test_item3_an_unusable_ecg_gets_no_mass_anywhere(bundle_dir, shared_data, tmp_path):
    from elvmass.bundle import load_bundle
    from elvmass.errors import UnusableECGError
    from elvmass.predict import predict_files, predict_record

    noisy = _noisy_ptbxl_npy(shared_data, tmp_path)
    good = shared_data.joinpath(*DICOM)
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(noisy), str(good), "--fs-hz", "500",
                                   "--json"])
    assert res.exit_code == 1, res.output  # something was not predicted
    assert [line["path"] for line in _json_lines(res.stdout)] == [str(good)]
    assert "noisy.npy: unusable for prediction (" in res.stderr and "excessive_noise" in res.stderr
    bundle = load_bundle(bundle_dir)
    with pytest.raises(UnusableECGError, match="excessive_noise"):
        predict_record(bundle, noisy, fs_hz=500)
    preds, errors = predict_files(bundle, [noisy], fs_hz=500)
    assert preds == [] and isinstance(errors[0], UnusableECGError) and "excessive_noise" in errors[0].flags


def test_item8_arrays_are_predicted_with_fs_hz(bundle_dir, shared_data, tmp_path):
    import numpy as np

    from elvmass import read_ecg

    rec = read_ecg(shared_data / "ptbxl-sample" / "records500" / "00000" / "00001_hr")
    arr = tmp_path / "ptbxl1.npy"
    np.save(arr, rec.signal_mv)
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(arr), "--json", "--fs-hz", "500",
                                   "--sex", "F", "--age", "56", "--height-cm", "165", "--weight-kg", "63"])
    assert res.exit_code == 0, res.output  # PTB-XL record 1: a 56-year-old woman of 63 kg (ptbxl_database.csv)
    line = _json_lines(res.stdout)[0]
    assert line["model"] == "elvmassnet_female" and 30 < line["lvm_g"] < 600
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(arr)])
    assert res.exit_code == 1 and "--fs-hz" in res.stderr


def test_item10_bracketed_file_names_print_as_written(bundle_dir, shared_data, tmp_path):
    import shutil

    named = tmp_path / "[a] ecg.dcm"
    shutil.copy(shared_data.joinpath(*DICOM), named)
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(named)], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    assert "[a] ecg.dcm" in res.stdout


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_item11_out_format_follows_the_suffix(bundle_dir, muse_files, tmp_path, suffix):
    out = tmp_path / f"pred{suffix}"
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(muse_files[1]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert table["path"].tolist() == [str(muse_files[1])] and table["sex"].tolist() == ["M"]
    if suffix == ".parquet":
        assert out.read_bytes()[:4] == b"PAR1"  # the Parquet magic number, not CSV text


def test_item11_an_unknown_out_suffix_is_refused_before_predicting(bundle_dir, muse_files, tmp_path):
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(muse_files[1]),
                                   "--out", str(tmp_path / "pred.xlsx")])
    assert res.exit_code == 2 and ".csv or .parquet" in res.stderr and not (tmp_path / "pred.xlsx").exists()


def test_item17_overrides_are_flagged_and_a_contradicting_sex_is_refused(bundle_dir, shared_data):
    # PTB-XL record 1 is a woman (ptbxl_database.csv: sex 1 = female), 56 years, 63 kg
    woman = shared_data / "ptbxl-sample" / "records500" / "00000" / "00001_hr.hea"
    dicom = shared_data.joinpath(*DICOM)  # also a woman
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(woman), "--sex", "M", "--json"])
    assert res.exit_code == 1 and _json_lines(res.stdout) == []
    assert "sex M was given but the file says F" in res.stderr and "--force-sex" in res.stderr
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(woman), "--sex", "M", "--force-sex",
                                   "--age", "70", "--weight-kg", "63", "--json"])
    assert res.exit_code == 0, res.output
    line = _json_lines(res.stdout)[0]
    assert line["sex"] == "M" and line["model"] == "elvmassnet_male"
    assert "override:sex" in line["flags"] and "override:age_years" in line["flags"]
    assert "override:weight_kg" not in line["flags"]  # the same as the file's 63 kg: not an override
    # --sex agreeing with the file is no override
    res = CliRunner().invoke(app, ["predict", "--model", str(bundle_dir), str(dicom), "--sex", "female", "--json"])
    assert res.exit_code == 0 and not any(f.startswith("override") for f in _json_lines(res.stdout)[0]["flags"])


def test_item18_the_table_summarises_flags_at_80_columns(bundle_dir, shared_data, tmp_path):
    import subprocess
    import sys

    files = [shared_data / "vendor" / "ge-muse-xml" / "muse_ecg1.xml",
             shared_data / "vendor" / "philips-xml" / "129DYPRG.XML", shared_data.joinpath(*DICOM)]
    import os

    env = {**os.environ, "COLUMNS": "80"}
    res = subprocess.run([sys.executable, "-m", "elvmass", "predict", "--model", str(bundle_dir), *map(str, files)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith("│")]
    names = [f.name for f in files]
    starts = [i for i, line in enumerate(rows) if any(line.startswith(f"│ {n}") for n in names)]
    assert len(starts) == 3, res.stdout
    heights = [b - a for a, b in zip(starts, starts[1:] + [len(rows)])]
    assert max(heights) <= 4, res.stdout  # was 10-15 lines per file with every flag spelled out
    assert "outside cohort:" in res.stdout  # the rule stays visible in the summary
    assert "every flag: --json" in res.stdout


def test_item22_predict_record_takes_a_path_and_the_top_level_api(bundle_dir, muse_files):
    import elvmass
    from elvmass.bundle import load_bundle
    from elvmass.predict import predict_record

    bundle = load_bundle(bundle_dir)
    by_path = predict_record(bundle, str(muse_files[1]))
    by_record = predict_record(bundle, elvmass.read_ecg(muse_files[1]))
    assert by_path.lvm_g == by_record.lvm_g and by_path.path == str(muse_files[1])
    assert elvmass.predict_ecg(bundle_dir, muse_files[1]).lvm_g == pytest.approx(by_path.lvm_g, rel=1e-6)
    assert elvmass.load_model is elvmass.load_bundle
    from elvmass.experiments.study import run_study

    assert elvmass.run_study is run_study
    for name in ("read_ecg", "analyze_ecg", "load_bundle", "load_model", "predict_ecg", "predict_files", "run_study"):
        assert name in elvmass.__all__ and callable(getattr(elvmass, name))


def test_item22_the_readme_python_example_runs(bundle_dir, tmp_path, monkeypatch):
    import doctest
    import re
    import shutil
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shutil.copytree(bundle_dir, tmp_path / "model")  # where `elvmass train --out model/` puts it
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(block, {}, "README.md Python API", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted >= 8
