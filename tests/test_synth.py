"""The synthetic cohort generator: files a user's tools can read, calibration, reproducibility."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elvmass.record import LEAD_INDEX as L
from elvmass.synth import IMAGING_COLUMNS, SynthConfig, generate_cohort, simulate_patient
from elvmass.synth.dipole import DOWER, INVERSE_DOWER, dipole_to_leads, leads_to_dipole, render_dipole
from elvmass.synth.lvmass import LVMASS_MODELS, sample_lv_mass
from elvmass.synth.population import POPULATIONS, sample_patient

UV_PER_BIT = 4.88


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth12")
    generate_cohort(SynthConfig(n=12, seed=3), out)
    return out


def test_dower_is_the_pseudo_inverse_of_the_inverse_dower_matrix():
    assert np.allclose(np.linalg.pinv(INVERSE_DOWER), DOWER, atol=0.004)
    vcg = np.random.default_rng(0).normal(size=(50, 3))
    assert np.allclose(leads_to_dipole(dipole_to_leads(vcg)), vcg, atol=0.01)


def test_render_dipole_places_a_gaussian_where_asked():
    waves = np.array([[0.0, 10.0, 1.0, 0.0, 0.0]])
    vcg = render_dipole(np.array([1.0]), [waves], 1000, 500.0)
    assert int(np.argmax(vcg[:, 0])) == 500 and vcg[500, 0] == pytest.approx(1.0)
    assert vcg[500 + 5, 0] == pytest.approx(np.exp(-0.5), rel=1e-9)  # 10 ms = one width
    assert np.all(vcg[:, 1:] == 0)


def test_files_imaging_and_truth_are_written(small_cohort):
    imaging = pd.read_csv(small_cohort / "imaging.csv")
    truth = pd.read_csv(small_cohort / "truth.csv")
    assert tuple(imaging.columns) == IMAGING_COLUMNS
    assert len(imaging) == 12 and imaging.patient_id.is_unique and set(imaging.lvm_source) == {"CT"}
    assert len(truth) == len(list((small_cohort / "ecgs").glob("*.xml"))) >= 12
    for col in ("lvm_true_g", "remodel_log", "ph_qrs_mv", "ph_strain", "rhythm", "device_qrs_ms", "days_from_imaging"):
        assert col in truth.columns
    # imaging LVM is the measured value of the patient's true mass (CT noise about 5 %)
    merged = truth.drop_duplicates("patient_id").merge(imaging, on="patient_id")
    assert np.allclose(merged.lvm_g, merged.lvm_measured_g)
    assert (np.abs(np.log(merged.lvm_g / merged.lvm_true_g)) < 0.25).all()


def test_written_ecgs_read_back_with_limb_relations_and_metadata(small_cohort):
    from elvmass.io import read_ecg

    truth = pd.read_csv(small_cohort / "truth.csv")
    for _, row in truth.head(6).iterrows():
        rec = read_ecg(small_cohort / row.ecg_file)
        s = rec.signal_mv.astype(np.float64)
        q = UV_PER_BIT / 1000.0
        assert np.abs(s[L["II"]] - s[L["I"]] - s[L["III"]]).max() <= q
        assert np.abs(s[L["aVR"]] + s[L["aVL"]] + s[L["aVF"]]).max() <= 1.5 * q
        assert rec.patient.patient_id == row.patient_id and rec.patient.sex == row.sex
        assert rec.fs_hz == 500 and rec.n_samples == 5000
        assert rec.measurements.qrs_ms == row.device_qrs_ms
        assert rec.acquired_at.isoformat(sep=" ") == row.ecg_datetime
        assert " | ".join(rec.statements) == row.statements
        assert 0.3 < np.abs(s).max() < 8.0  # millivolts, not counts


def test_wfdb_cohort_keeps_einthoven_in_all_stored_leads(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    out = generate_cohort(SynthConfig(n=2, seed=5), tmp_path, fmt="wfdb")
    rec = wfdb.rdrecord(str(out.ecg_paths[0].with_suffix("")))
    s = rec.p_signal.T
    assert rec.sig_name[:3] == ["I", "II", "III"]
    assert np.abs(s[1] - s[0] - s[2]).max() <= 0.0015  # three roundings of 1 uV
    assert np.abs(s[3] + s[4] + s[5]).max() <= 0.002
    comments = dict(c.split(": ", 1) for c in rec.comments)
    assert comments["PatientID"] == "SYN00001" and comments["Sex"] in ("Male", "Female")


def test_same_seed_gives_byte_identical_files(tmp_path, small_cohort):
    generate_cohort(SynthConfig(n=12, seed=3), tmp_path / "again")
    assert _digest(tmp_path / "again") == _digest(small_cohort)
    generate_cohort(SynthConfig(n=4, seed=4), tmp_path / "other")
    assert _digest(tmp_path / "other")["ecgs/SYN00001_1.xml"] != _digest(small_cohort)["ecgs/SYN00001_1.xml"]


def test_patient_k_does_not_depend_on_cohort_size():
    a = simulate_patient(7, SynthConfig(n=10, seed=1))
    b = simulate_patient(7, SynthConfig(n=500, seed=1))
    assert np.array_equal(a[0][0].signal_mv, b[0][0].signal_mv) and a[2] == b[2]


def test_exclusion_type_ecgs_look_the_part():
    """Scan patients until each exclusion type turns up; check statements and device QRS."""
    cfg = SynthConfig(n=2000, seed=0)
    found = {}
    for i in range(2000):
        records, truths, _, _ = simulate_patient(i, cfg)
        for rec, tr in zip(records, truths):
            key = tr["ph_conduction"] if tr["ph_conduction"] != "normal" else ("AF" if tr["rhythm"] == "AF" else None)
            if key and key not in found:
                found[key] = (rec, tr)
        if len(found) == 4:
            break
    assert set(found) == {"LBBB", "RBBB", "paced", "AF"}
    assert "Left bundle branch block" in found["LBBB"][0].statements and found["LBBB"][0].measurements.qrs_ms >= 120
    assert "Right bundle branch block" in found["RBBB"][0].statements and found["RBBB"][0].measurements.qrs_ms >= 120
    assert "Electronic ventricular pacemaker" in found["paced"][0].statements
    af = found["AF"][0]
    assert "Atrial fibrillation" in af.statements and af.measurements.pr_ms is None
    # paced ECGs carry pacing spikes: a one-sample jump of > 1 mV in some lead
    sig = found["paced"][0].signal_mv
    assert np.abs(np.diff(sig, axis=1)).max() > 1.0


def test_lv_mass_effects_point_the_right_way():
    rows = []
    for i in range(400):
        rng = np.random.default_rng([9, i])
        p = sample_patient(rng, POPULATIONS["internal"])
        p.update(sample_lv_mass(rng, p, LVMASS_MODELS["internal"]))
        rows.append(p)
    d = pd.DataFrame(rows)
    assert d.groupby("hypertension").lvm_true_g.mean()[True] > d.groupby("hypertension").lvm_true_g.mean()[False] * 1.05
    assert 0.55 <= (d.sex == "M").mean() <= 0.65 and d.age_years.between(30, 85).all()
    for _, g in d.groupby("sex"):
        assert 0.25 < np.corrcoef(g.height_cm, g.weight_kg)[0, 1] < 0.7


def test_external_profile_measures_by_echo_with_overestimation_and_right_skew():
    rows = []
    for i in range(1500):
        rng = np.random.default_rng([2, i])
        p = sample_patient(rng, POPULATIONS["external"])
        p.update(sample_lv_mass(rng, p, LVMASS_MODELS["external"]))
        rows.append(p)
    d = pd.DataFrame(rows)
    assert set(d.lvm_source) == {"echo"}
    ratio = d.lvm_measured_g / d.lvm_true_g
    assert 1.05 < ratio.mean() < 1.20
    skew = d.assign(e=np.log(ratio)).groupby("sex").e.skew()
    assert skew["F"] > skew["M"] > 0
    means = d.groupby("sex").lvm_true_g.mean()
    assert 135 < means["M"] < 160 and 98 < means["F"] < 120  # Kang et al. 2017 CT: 145 / 108 g


def test_cli_writes_a_cohort(tmp_path):
    from typer.testing import CliRunner

    from elvmass.cli import app

    res = CliRunner().invoke(app, ["synth", "--n", "3", "--seed", "1", "--out", str(tmp_path), "--profile", "external", "--json"])
    assert res.exit_code == 0, res.output
    assert '"n_patients": 3' in res.output
    assert pd.read_csv(tmp_path / "imaging.csv").lvm_source.eq("echo").all()
    bad = CliRunner().invoke(app, ["synth", "--n", "3", "--out", str(tmp_path), "--profile", "mars"])
    assert bad.exit_code == 1 and "unknown profile" in bad.output and "Traceback" not in bad.output


def test_side_by_side_with_a_real_ptbxl_ecg(tmp_path, small_cohort, shared_data):
    """Plot one synthetic and one real PTB-XL ECG (Wagner et al. 2020, CC-BY-4.0) for a person to compare.

    The PNG goes to $ELVMASS_ARTIFACTS (if set) or the test's tmp folder. Besides the picture,
    the synthetic ECG's amplitude and QRS sharpness must lie in the real ECG's range.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from elvmass.io import read_ecg
    from elvmass.record import LEADS

    real = read_ecg(shared_data / "ptbxl-sample" / "records500" / "00000" / "00001_hr")
    synth = read_ecg(next(iter(sorted((small_cohort / "ecgs").glob("*.xml")))))
    out_dir = Path(os.environ.get("ELVMASS_ARTIFACTS", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(12, 2, figsize=(14, 16), sharex=True)
    t = np.arange(2500) / 500.0
    for col, (rec, name) in enumerate([(synth, "synthetic (elvmass.synth)"), (real, "PTB-XL 00001 (real)")]):
        for i, lead in enumerate(LEADS):
            ax = axes[i, col]
            ax.plot(t, rec.signal_mv[i, :2500], lw=0.7, color="k")
            ax.set_ylabel(lead, rotation=0, labelpad=14)
            ax.set_ylim(-2, 2)
        axes[0, col].set_title(name)
    fig.tight_layout()
    png = out_dir / "synth_vs_ptbxl.png"
    fig.savefig(png, dpi=80)
    plt.close(fig)
    assert png.stat().st_size > 20_000
    for rec in (synth, real):
        p2p = np.ptp(rec.signal_mv, axis=1)
        assert 0.3 < np.median(p2p) < 4.0


def test_n_counts_the_pairs_left_after_cohort_building(tmp_path):
    """As the paper's 1,459 counts pairs after exclusions, `n` counts patients that survive them;
    the excluded ones (paced, BBB, AF, no ECG in the window) are written too, for the builder to drop."""
    from elvmass.cohort import build_cohort

    out = generate_cohort(SynthConfig(n=60, seed=11), tmp_path)
    truth = pd.read_csv(out.truth_csv)
    eligible = truth.groupby("patient_id").eligible_ecg.any()
    assert out.n_patients == len(eligible) > 60 and int(eligible.sum()) == 60
    build = build_cohort(out.ecg_dir, out.imaging_csv)
    assert len(build.manifest) == 60
    assert set(build.manifest.patient_id) == set(eligible[eligible].index)


def test_workers_write_the_same_files_and_build_the_same_manifest(tmp_path):
    """40 patients: more than one 32-patient chunk per process, and patients simulated ahead of the
    cut are not left behind; the manifest read by 2 processes equals the one read in-process."""
    from elvmass.cohort import build_cohort

    one = generate_cohort(SynthConfig(n=40, seed=5), tmp_path / "one", workers=1)
    two = generate_cohort(SynthConfig(n=40, seed=5), tmp_path / "two", workers=2)
    assert one.n_patients == two.n_patients > 40
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")
    assert len(list(two.ecg_dir.iterdir())) == len(two.truth) > 64  # enough files for the parallel reader
    b1 = build_cohort(one.ecg_dir, one.imaging_csv, workers=1)
    b2 = build_cohort(two.ecg_dir, two.imaging_csv, workers=2)
    cols = [c for c in b1.manifest.columns if c != "ecg_path"]
    pd.testing.assert_frame_equal(b1.manifest[cols], b2.manifest[cols])
    pd.testing.assert_frame_equal(b1.flow, b2.flow)


def test_wfdb_cohort_builds_like_the_muse_one(tmp_path):
    """--format wfdb must carry patient ID, date, statements and device QRS to cohort building as MUSE does
    (the reader once dropped them and every WFDB ECG was excluded for lacking a patient ID)."""
    from elvmass.cohort import build_cohort

    builds = {}
    for fmt in ("muse", "wfdb"):
        out = generate_cohort(SynthConfig(n=8, seed=11), tmp_path / fmt, fmt=fmt)
        builds[fmt] = build_cohort(out.ecg_dir, out.imaging_csv).manifest
    assert len(builds["wfdb"]) == 8
    cols = ["patient_id", "ecg_datetime", "lvm_g", "sex", "qrs_ms", "r_axis_deg"]
    pd.testing.assert_frame_equal(builds["wfdb"][cols], builds["muse"][cols])
    assert [Path(p).stem for p in builds["wfdb"].ecg_path] == [Path(p).stem for p in builds["muse"].ecg_path]


def test_regenerating_into_a_folder_leaves_no_ecgs_of_the_previous_cohort(tmp_path):
    """A second run with another seed, size or format into the same folder must not leave the first run's
    ECG files behind: they carry the same patient IDs (SYN00001...) and cohort building would pair them
    with the new imaging.csv. Files the generator does not name are left alone."""
    generate_cohort(SynthConfig(n=4, seed=0), tmp_path, fmt="wfdb")
    (tmp_path / "ecgs" / "my_notes.txt").write_text("keep me")
    out = generate_cohort(SynthConfig(n=1, seed=1), tmp_path)
    on_disk = sorted(p.name for p in out.ecg_dir.iterdir())
    assert on_disk == sorted([p.name for p in out.ecg_paths] + ["my_notes.txt"])
    truth = pd.read_csv(out.truth_csv)
    assert sorted(truth.ecg_file.map(lambda s: Path(s).name)) == sorted(p.name for p in out.ecg_paths)
