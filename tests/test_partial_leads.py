"""Records with fewer than 12 leads (2-lead Holter and PhysioNet databases such as QTDB: MLII and V5 at
250 Hz, format 212): ``elvmass beats`` delineates them on the leads they have; the model never sees them.

The 2-lead files are written here from LUDB record 1 (its leads II and V5, taken every second sample to
250 Hz) with ``wfdb.wrsamp``, as PhysioNet ships such databases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from elvmass import read_ecg
from elvmass.cli import app
from elvmass.errors import ECGReadError
from elvmass.io._assemble import assemble_record
from elvmass.record import LEADS
from elvmass.signal import analyze_ecg
from elvmass.signal.quality import blocks_measurements, is_blocking

runner = CliRunner()


def _two_lead_record(shared_data, tmp_path, names=("MLII", "V5")):
    import wfdb
    from scipy.signal import resample_poly

    full = read_ecg(shared_data / "ludb/data/1.hea")
    sig = np.stack([full.lead("II"), full.lead("V5")], axis=1).astype(np.float64)
    sig = resample_poly(sig, 1, 2, axis=0)  # 500 -> 250 Hz, anti-aliased
    wfdb.wrsamp("holter", fs=250, units=["mV", "mV"], sig_name=list(names), p_signal=sig, fmt=["212", "212"],
                adc_gain=[200.0, 200.0], baseline=[0, 0], write_dir=str(tmp_path))
    return tmp_path / "holter.hea", full


def test_a_two_lead_holter_record_is_refused_by_default_and_read_partially_on_request(shared_data, tmp_path):
    path, _ = _two_lead_record(shared_data, tmp_path)
    with pytest.raises(ECGReadError, match="holter.hea: missing lead I"):
        read_ecg(path)
    rec = read_ecg(path, partial_leads=True)
    assert rec.fs_hz == 250.0 and rec.signal_mv.shape == (12, 2500)
    assert rec.missing_leads == ("I", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V6")
    assert "modified_limb_leads:MLII" in rec.flags
    assert not any(f.startswith(("nan_samples:", "flat_lead:")) for f in rec.flags)  # missing, said once
    for name in LEADS:
        assert np.isnan(rec.lead(name)).all() == (name in rec.missing_leads)


def test_partial_assembly_derives_what_it_can_and_keeps_the_limb_alias_out_of_strict_reads(shared_data):
    real = read_ecg(shared_data / "ptbxl-sample/records500/00000/00001_hr")  # (its III is II - I, to 2.5 uV)
    pairs = [(n, real.lead(n)) for n in ("I", "II", "V1", "V2")]
    rec = assemble_record("f", pairs, [500.0] * 4, source_format="test", partial_leads=True)
    assert rec.missing_leads == ("V3", "V4", "V5", "V6")  # III, aVR, aVL, aVF derived from I and II
    assert np.abs(rec.lead("III") - real.lead("III")).max() <= 2.5e-3
    pairs = [("MLII", real.lead("II")), ("I", real.lead("I")), *[(n, real.lead(n)) for n in LEADS[6:]]]
    with pytest.raises(ECGReadError, match="missing lead II"):  # a strict read does not take MLII for II
        assemble_record("f", pairs, [500.0] * 8, source_format="test")
    rec = assemble_record("f", pairs, [500.0] * 8, source_format="test", partial_leads=True)
    assert rec.missing_leads == () and "modified_limb_leads:MLII" in rec.flags


def test_beats_delineates_a_two_lead_record_like_the_twelve_lead_one(shared_data, tmp_path):
    path, full = _two_lead_record(shared_data, tmp_path)
    res = runner.invoke(app, ["beats", str(path), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout.strip().splitlines()[-1])
    twelve = analyze_ecg(full)
    assert "missing_leads:I,III,aVR,aVL,aVF,V1,V2,V3,V4,V6" in d["flags"] and d["usable"] is False
    # the same beat delineated on 2 leads at 250 Hz and on 12 at 500 Hz (measured here: within 0.1-2.7 ms;
    # T end 22 ms later, the 2-lead T wave ending where its last lead does)
    for k, tol in (("p_on", 5.0), ("qrs_on", 5.0), ("qrs_off", 5.0), ("t_off", 30.0)):
        assert abs(d["fiducials_ms"][k] - twelve.fiducials_ms[k]) <= tol, (k, d["fiducials_ms"][k], twelve.fiducials_ms[k])
    m = d["measured"]  # intervals from the leads it has; no frontal axis without leads I and aVF
    assert abs(m["qrs_ms"] - twelve.measured["qrs_ms"]) <= 8.0 and abs(m["pr_ms"] - twelve.measured["pr_ms"]) <= 8.0
    assert abs(m["hr_bpm"] - twelve.measured["hr_bpm"]) <= 0.5
    assert m["p_axis_deg"] is None and m["r_axis_deg"] is None and m["t_axis_deg"] is None
    assert all(v is None for v in d["criteria"].values())  # voltage criteria need all 12 leads


def test_a_partial_record_is_blocking_for_the_model_but_not_for_its_measurements(shared_data, tmp_path):
    path, _ = _two_lead_record(shared_data, tmp_path)
    a = analyze_ecg(read_ecg(path, partial_leads=True))
    flag = next(f for f in a.flags if f.startswith("missing_leads:"))
    assert is_blocking(flag) and not blocks_measurements(flag)
    assert not a.usable and a.measurable and math.isfinite(a.measured["qrs_ms"])
    assert not any(f.startswith("flat_lead:") for f in a.flags)
    res = runner.invoke(app, ["beats", str(path)])
    assert res.exit_code == 0 and "criteria not reported" in res.stdout


def test_a_record_whose_leads_are_none_of_the_standard_ones_is_still_refused(shared_data, tmp_path):
    path, _ = _two_lead_record(shared_data, tmp_path, names=("CM5", "D3"))
    with pytest.raises(ECGReadError, match=r"no standard ECG leads in the file \(found CM5, D3\)"):
        read_ecg(path, partial_leads=True)


def test_the_hybrid_p_onset_averages_the_network_over_the_leads_the_record_has(shared_data, tmp_path):
    """The network's P probability is the mean over leads; over all 12 rows, the 10 missing leads (zeros once
    filtered) drown the two real ones and it never finds the P wave, so the hybrid would quietly be the rules."""
    from elvmass.signal import SignalConfig

    path, full = _two_lead_record(shared_data, tmp_path)
    rec = read_ecg(path, partial_leads=True)
    rules, hybrid = analyze_ecg(rec), analyze_ecg(rec, SignalConfig(p_onset="hybrid"))
    twelve = analyze_ecg(full, SignalConfig(p_onset="hybrid"))
    assert hybrid.fiducials_ms["p_on"] != rules.fiducials_ms["p_on"]
    assert abs(hybrid.fiducials_ms["p_on"] - twelve.fiducials_ms["p_on"]) <= 5.0
