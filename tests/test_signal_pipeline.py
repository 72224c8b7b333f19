"""Signal pipeline on real ECGs: PTB-XL sample (Wagner et al., Sci Data 2020, CC-BY-4.0) and genuine
vendor exports (see ../shared/data/README.md)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from elvmass import read_ecg
from elvmass.record import ECGRecord
from elvmass.signal import (
    LEAD_GROUPS,
    SignalConfig,
    analyze_ecg,
    bandpass_filter,
    combine_leads,
    detect_r_peaks,
    extract_view,
    group_leads,
)

PTB_RECORD = "ptbxl-sample/records500/00000/00001_hr"


def circ_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.fixture(scope="module")
def ptb1(shared_data):
    return read_ecg(shared_data / PTB_RECORD)


def test_bandpass_removes_wander_keeps_qrs(ptb1):
    fs = ptb1.fs_hz
    drift = 1.5 * np.sin(2 * np.pi * 0.1 * np.arange(ptb1.n_samples) / fs)
    y_clean = bandpass_filter(ptb1.signal_mv, fs)
    y_drift = bandpass_filter(ptb1.signal_mv + drift.astype(np.float32), fs)
    assert y_clean.dtype == np.float32 and y_clean.shape == (12, 5000)
    inner = slice(500, -500)
    assert np.abs(y_drift[:, inner] - y_clean[:, inner]).max() < 0.05  # 1.5 mV of wander reduced below 0.05 mV
    # zero phase: the R peak of lead II stays on the same sample
    p = int(detect_r_peaks(ptb1.signal_mv, fs)[4])
    win = slice(p - 25, p + 26)
    assert abs(int(np.argmax(y_clean[1, win])) - int(np.argmax(ptb1.signal_mv[1, win]))) <= 1


def test_notch_removes_mains(ptb1):
    fs = ptb1.fs_hz
    hum = 0.2 * np.sin(2 * np.pi * 50.0 * np.arange(ptb1.n_samples) / fs)
    noisy = ptb1.signal_mv + hum.astype(np.float32)
    y = bandpass_filter(noisy, fs, 0.5, 150.0, notch_hz=50.0)
    ref = bandpass_filter(ptb1.signal_mv, fs, 0.5, 150.0, notch_hz=50.0)
    assert np.abs(y - ref)[:, 500:-500].max() < 0.02


def test_r_peaks_shared_and_robust_to_inverted_leads(ptb1):
    fs = ptb1.fs_hz
    peaks = detect_r_peaks(ptb1.signal_mv, fs)
    assert peaks.size == 10  # 00001: sinus rhythm ~64 bpm over 10 s
    assert np.all(np.diff(peaks) > 0.4 * fs)
    flipped = ptb1.signal_mv.copy()
    flipped[[0, 1, 6, 7, 8]] *= -1  # invert five leads
    assert np.array_equal(detect_r_peaks(flipped, fs), peaks)


def test_views_synchronized_and_fixed_length(ptb1):
    cfg = SignalConfig()
    view = extract_view(ptb1, cfg)
    assert view.shape == (12, 225) and view.dtype == np.float32
    # synchronized: aVR = -(I + II)/2 holds sample by sample only if every lead is cut at the same indices
    assert np.allclose(view[3], -(view[0] + view[1]) / 2, atol=1e-3)
    # the R peak of the lead-combined beat sits at beat_before_s
    assert abs(int(np.argmax(combine_leads(view))) - cfg.beat_samples_before) <= 3
    for name, length in (("full", 2500), ("random_crop", 1000), ("median_beat", 225)):
        v = extract_view(ptb1, SignalConfig(view=name))
        assert v.shape == (12, length), name
    c1 = extract_view(ptb1, SignalConfig(view="random_crop"), rng=np.random.default_rng(1))
    c2 = extract_view(ptb1, SignalConfig(view="random_crop"), rng=np.random.default_rng(2))
    assert not np.array_equal(c1, c2)
    assert np.array_equal(extract_view(ptb1, SignalConfig(view="random_crop")), extract_view(ptb1, SignalConfig(view="random_crop")))
    # the output rate is configurable; the same window at 500 Hz is twice as long
    assert extract_view(ptb1, SignalConfig(out_fs_hz=500.0)).shape == (12, 450)


def test_view_same_at_any_input_rate(ptb1):
    cfg = SignalConfig()
    v500 = extract_view(ptb1, cfg)
    v1000 = extract_view(ptb1.resampled(1000.0), cfg)
    # same beat, same alignment: the R peak may land up to 1 ms apart, so steep QRS slopes differ a little
    assert np.sqrt(np.mean((v500 - v1000) ** 2)) < 0.01
    assert np.corrcoef(v500.ravel(), v1000.ravel())[0, 1] > 0.995


def test_lead_groups():
    assert LEAD_GROUPS["electrical"] == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    assert LEAD_GROUPS["anatomical"] == [[6, 7, 8, 9], [0, 4, 10, 11], [1, 2, 5], [3]]
    assert LEAD_GROUPS["none"] == [list(range(12))]
    view = np.arange(12 * 5, dtype=np.float32).reshape(12, 5)
    parts = group_leads(view, "anatomical")
    assert [p.shape[0] for p in parts] == [4, 4, 3, 1]
    assert np.array_equal(parts[3][0], view[3])
    batch = np.stack([view, view])
    assert group_leads(batch, "electrical")[1].shape == (2, 6, 5)
    with pytest.raises(ValueError, match="lead grouping"):
        group_leads(view, "frontal")


def test_config_roundtrip_and_validation():
    cfg = SignalConfig(view="median_beat", lead_grouping="anatomical", notch_hz=60.0)
    assert SignalConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="view"):
        SignalConfig(view="two_beats")
    with pytest.raises(ValueError, match="alias"):
        SignalConfig(out_fs_hz=60.0)
    with pytest.raises(ValueError, match="unknown"):
        SignalConfig.from_dict({"bogus": 1})


def test_no_beat_is_flagged_not_silent():
    flat = ECGRecord(np.zeros((12, 5000), np.float32), 500.0)
    a = analyze_ecg(flat)
    assert "no_beat" in a.flags and "flat_lead:I" in a.flags and not a.usable
    assert np.isnan(a.view).all()
    assert math.isnan(a.measured["qrs_ms"]) and a.criteria["sokolow_lyon_positive"] is None


def test_quality_flags_on_real_records(shared_data):
    base = shared_data / "ptbxl-sample/records500/00000"
    paced = analyze_ecg(read_ecg(base / "00143_hr"))  # PTB-XL 'pacemaker'
    assert "pacing_spikes" in paced.flags and not paced.usable
    afib = analyze_ecg(read_ecg(base / "00018_hr"))  # AFIB, irregular ventricular response
    assert "irregular_rr" in afib.flags
    clean = analyze_ecg(read_ecg(base / "00001_hr"))
    assert clean.flags == () and clean.usable
    rec = read_ecg(base / "00001_hr")
    sig = rec.signal_mv.copy()
    sig[8] = 0.0  # V3 disconnected
    sig[10] = np.clip(sig[10], -0.2, 0.2)  # V5 clipped
    flagged = analyze_ecg(rec.replace(signal_mv=sig))
    assert "flat_lead:V3" in flagged.flags and "saturated_lead:V5" in flagged.flags


@pytest.mark.parametrize("rel, paced", [
    ("ptbxl-sample/records500/00000/00190_hr", True),    # PTB-XL 'pacemaker': stimuli ~90 ms before each R
    ("ludb/data/8", True),                                # LUDB 'Cardiac pacing': unipolar ventricular
    ("ludb/data/93", True),                               # LUDB paced, stimuli 0.25-0.35 mV ~150 ms before R
    ("ludb/data/95", True),                               # LUDB paced, stimuli 0.25-0.35 mV ~80 ms before R
    ("ludb/data/104", True),                              # LUDB paced, stimuli 0.25-0.35 mV ~75 ms before R
    ("ptbxl-sample/records500/00000/00162_hr", False),   # LAFB, LVH: two artefacts 3.5 s apart
    ("ptbxl-sample/records500/00000/00182_hr", False),   # LAFB, first-degree AV block: two artefacts
    ("ludb/data/99", False),                              # sinus: one-sample glitches on its R apexes
    ("ludb/data/109", False),                             # AF: the same, 10 ms after each detected R
])
def test_pacing_spikes_must_lead_beats(shared_data, rel, paced):
    """A pacemaker's stimulus comes before the complex it starts; sharp samples on the R apex or a couple of
    isolated artefacts are not pacing (the earlier count of spike samples flagged all six negatives); stimuli
    between 0.25 and 0.35 mV at a fixed lead before R are (the rule before 4 Dec 2026 missed LUDB 93, 95, 104)."""
    a = analyze_ecg(read_ecg(shared_data / rel))
    assert ("pacing_spikes" in a.flags) is paced, a.flags
    if paced:
        assert not a.usable


@pytest.mark.parametrize("name", ["dicom/waveform_ecg.dcm", "philips-xml/3191723_ZZDEMOPTONLY_1-04_orig.xml",
                                  "philips-xml/ad4d3d80-d165_1-04_converted.xml", "ge-muse-xml/muse_ecg2.xml"])
def test_quality_flags_do_not_depend_on_the_sampling_rate(shared_data, name):
    """Genuine device exports, clean at their own rate (1000 or 500 Hz), stay clean resampled to 250 Hz:
    no noisy lead (the earlier noise estimate grew as the rate fell and refused the DICOM at 250 Hz) and
    no pacing spikes (a QRS at 250 Hz is as sharp per sample as a pacing spike: not judged, and said)."""
    rec = read_ecg(shared_data / "vendor" / name)
    own = [f for f in analyze_ecg(rec).flags if not f.startswith("calibration_pulse")]
    low = [f for f in analyze_ecg(rec.resampled(250.0)).flags if not f.startswith("calibration_pulse")]
    assert not any(f.startswith(("noisy_lead", "pacing_spikes", "excessive_noise")) for f in own + low)
    assert "pacing_not_checked" in low and "pacing_not_checked" not in own


def test_noise_flags_agree_with_ptbxl_annotators(shared_data):
    """PTB-XL's annotators mark static noise, burst noise and electrode problems. Of the records elvmass
    calls noisy, nearly all are marked: 00017 (burst noise, 'alles'), 00068 and 00197 (static noise); the clean
    00002 and 00136 are not flagged. The noise estimate is the same at 250 Hz (white noise check in the
    docstring of ``high_frequency_noise_mv``)."""
    from elvmass.signal.quality import NOISE_HF_MV, high_frequency_noise_mv

    base = shared_data / "ptbxl-sample/records500/00000"
    for ecg_id, noisy in (("00017", True), ("00068", True), ("00197", True), ("00002", False), ("00136", False)):
        rec = read_ecg(base / f"{ecg_id}_hr")
        for r in (rec, rec.resampled(250.0)):
            assert ("excessive_noise" in analyze_ecg(r).flags) is noisy, (ecg_id, r.fs_hz)
        n500 = high_frequency_noise_mv(rec.signal_mv, 500.0).max()
        n250 = high_frequency_noise_mv(rec.resampled(250.0).signal_mv, 250.0).max()
        assert n250 == pytest.approx(n500, rel=0.1) and bool(n500 > NOISE_HF_MV) is noisy


def test_ptbxl_beat_extraction_all_clean_records(shared_data):
    db = pd.read_csv(shared_data / "ptbxl-sample/ptbxl_database.csv")
    clean = db[db.pacemaker.isna() & db.burst_noise.isna() & db.electrodes_problems.isna()]
    assert len(clean) == 187
    cfg = SignalConfig()
    for _, row in clean.iterrows():
        rec = read_ecg(shared_data / "ptbxl-sample" / row.filename_hr)
        a = analyze_ecg(rec, cfg)
        assert math.isfinite(a.beat_start_s), row.ecg_id
        assert 0.0 <= a.beat_start_s and a.beat_end_s <= rec.duration_s, row.ecg_id
        # the beat's R peak is one of the detected peaks; their accuracy is tested against the cardiologists'
        # QRS marks in LUDB (test_delineation.py::test_r_peaks_against_ludb_annotated_qrs_complexes)
        r_s = a.beat_start_s + cfg.beat_before_s
        assert np.min(np.abs(a.r_peaks_s - r_s)) < 1e-3, row.ecg_id


AXIS_LEFT = {"ALAD"}


def test_qrs_axis_matches_ptbxl_stated_axis(shared_data):
    """Records with a coded heart_axis: ALAD (< -30 deg), LAD (-30..+30), RAD (+90..+120)."""
    db = pd.read_csv(shared_data / "ptbxl-sample/ptbxl_database.csv")
    stated = db[db.heart_axis.notna() & db.pacemaker.isna()]
    agree = 0
    for _, row in stated.iterrows():
        ax = analyze_ecg(read_ecg(shared_data / "ptbxl-sample" / row.filename_hr)).measured["r_axis_deg"]
        ok = {"ALAD": ax < -25, "LAD": -40 <= ax <= 35, "RAD": 85 <= ax <= 180}[row.heart_axis]
        agree += ok
    assert agree / len(stated) >= 0.9


VENDOR = [
    "ge-muse-xml/muse_ecg1.xml",
    "ge-muse-xml/muse_ecg2.xml",
    "philips-xml/3191723_ZZDEMOPTONLY_1-04_orig.xml",
    "philips-xml/ad4d3d80-d165_1-04_converted.xml",
    "hl7-aecg/example-aecg.xml",
    "dicom/waveform_ecg.dcm",
    pytest.param(
        "philips-xml/129DYPRG.XML",
        marks=pytest.mark.xfail(
            strict=True,
            reason="the device's global QRS (135 ms) is its longest single-lead QRS (lead II, whose J point "
            "is lost in the inferior ST elevation of this acute MI); the device's own global QRS onset/offset "
            "marks and its beat-group QRS give 96 ms, as elvmass measures (102 ms) - see the test below",
        ),
    ),
]


@pytest.mark.parametrize("name", VENDOR)
def test_vendor_qrs_and_axis_match_device(shared_data, name):
    rec = read_ecg(shared_data / "vendor" / name)
    dev = rec.measurements
    assert dev.qrs_ms is not None
    a = analyze_ecg(rec)
    assert abs(a.measured["qrs_ms"] - dev.qrs_ms) <= 15.0
    if dev.r_axis_deg is not None:
        assert circ_diff(a.measured["r_axis_deg"], dev.r_axis_deg) <= 20.0
    if dev.t_axis_deg is not None:
        assert circ_diff(a.measured["t_axis_deg"], dev.t_axis_deg) <= 20.0


def test_analysis_json_contract(shared_data):
    a = analyze_ecg(read_ecg(shared_data / "vendor/ge-muse-xml/muse_ecg1.xml"))
    d = a.to_json_dict()
    assert set(d) == {"path", "r_peaks_s", "beat", "flags", "fiducials_ms", "measured", "criteria", "usable", "view"}
    assert set(d["beat"]) == {"start_s", "end_s"}
    assert set(d["fiducials_ms"]) == {"p_on", "p_off", "qrs_on", "qrs_off", "t_off"}
    assert {"qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg"} <= set(d["measured"])
    assert {"sokolow_lyon_mv", "cornell_voltage_mv", "cornell_product_mv_ms", "peguero_lo_presti_mv", "romhilt_estes_points",
            "sokolow_lyon_positive"} <= set(d["criteria"])
    f = d["fiducials_ms"]
    assert f["p_on"] < f["p_off"] < f["qrs_on"] < f["qrs_off"] < f["t_off"]
    # device: PR 158, QRS 78, QT 364 ms on this MUSE file
    assert abs((f["qrs_on"] - f["p_on"]) - 158) <= 15
    assert abs((f["t_off"] - f["qrs_on"]) - 364) <= 30
    masks = a.segment_masks()
    assert set(masks) == {"pr", "qrs", "st_t", "tp"}
    assert not (masks["qrs"] & masks["st_t"]).any()
    filled = a.completed_measurements(rec_dev := a.completed_measurements())
    assert filled.qrs_ms == 78.0 and rec_dev.r_axis_deg == 54.0  # device values kept, never overwritten


def _philips_fields(path, section: str) -> dict[str, str]:
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    node = next(el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == section)
    return {el.tag.rsplit("}", 1)[-1]: (el.text or "").strip() for el in node}


def test_peaked_t_waves_are_not_taken_for_beats_philips_acute_mi(shared_data):
    """129DYPRG.XML: sinus bradycardia 41/min with an acute inferior infarct (ST elevation II, III, aVF) and
    tall, peaked T waves 316 ms after each R. Without Pan-Tompkins' T-wave rule every T was a second
    "beat" (HR 189, QRS 210 ms, axes off by 45-180 deg). Now every device measurement is matched except
    the global QRS, which the device's own fiducial marks contradict (xfail above)."""
    path = shared_data / "vendor" / "philips-xml" / "129DYPRG.XML"
    rec = read_ecg(path)
    dev = rec.measurements
    assert (dev.hr_bpm, dev.qrs_ms, dev.pr_ms, dev.p_axis_deg, dev.r_axis_deg, dev.t_axis_deg) == (41, 135, 151, 66, -21, 59)
    a = analyze_ecg(rec)
    assert a.r_peaks_s.size == 7 and np.all(np.diff(a.r_peaks_s) > 1.4)
    assert abs(a.measured["hr_bpm"] - dev.hr_bpm) <= 1.0
    assert "irregular_rr" not in a.flags and a.usable
    for key in ("p_axis_deg", "r_axis_deg", "t_axis_deg"):
        assert circ_diff(a.measured[key], getattr(dev, key)) <= 20.0, key
    assert abs(a.measured["pr_ms"] - dev.pr_ms) <= 15.0
    # the device's global QRS onset and offset marks (ms in the record) and its beat-group QRS duration
    glob = _philips_fields(path, "globalmeasurements")
    group = _philips_fields(path, "groupmeasurement")
    assert (glob["qrson"], glob["qrsoff"], glob["meanqrsdur"], group["meanqrsdur"]) == ("7016", "7112", "135", "96")
    device_marks_qrs = int(glob["qrsoff"]) - int(glob["qrson"])
    assert abs(a.measured["qrs_ms"] - device_marks_qrs) <= 15.0
    # the onset mark falls on the QRS elvmass found in that beat (R at 7.066 s)
    r = a.r_peaks_s[np.argmin(np.abs(a.r_peaks_s - 7.066))]
    assert 0.0 < r - int(glob["qrson"]) / 1000.0 < 0.1


@pytest.mark.parametrize("name, n_beats, hr_bpm", [("00191_hr", 5, 31.0), ("00044_hr", 10, 59.6)])
def test_tall_t_waves_in_ptbxl_are_not_beats(shared_data, name, n_beats, hr_bpm):
    # 00191: sinus bradycardia, LVH, 1st degree AV block; 00044: normal sinus rhythm, low limb-lead voltage.
    # Both have T waves as tall as or taller than the QRS in the lead-combined signal, ~0.3 s after each R.
    rec = read_ecg(shared_data / "ptbxl-sample" / "records500" / "00000" / name)
    peaks = detect_r_peaks(rec.signal_mv, rec.fs_hz)
    assert peaks.size == n_beats
    rr = np.diff(peaks) / rec.fs_hz
    assert rr.min() > 0.8 * np.median(rr)  # regular: no T wave left in between
    a = analyze_ecg(rec)
    # HR as carts report it, 60 / mean RR
    assert a.measured["hr_bpm"] == pytest.approx(60.0 / rr.mean(), abs=1e-6)
    assert a.measured["hr_bpm"] == pytest.approx(hr_bpm, abs=0.1) and "irregular_rr" not in a.flags


def test_flat_stretches_and_record_edges_give_no_beats(shared_data):
    # 00002 (sinus bradycardia): detections at 0.30 s, 1.84 s (baseline drift, no QRS in any lead) and
    # 9.81 s (the filter's edge) had < 15 % of the QRS slope; they are dropped, the 7 real beats stay.
    rec = read_ecg(shared_data / "ptbxl-sample" / "records500" / "00000" / "00002_hr")
    peaks = detect_r_peaks(rec.signal_mv, rec.fs_hz) / rec.fs_hz
    assert np.allclose(peaks, [1.008, 2.312, 3.682, 5.026, 6.278, 7.474, 8.636], atol=0.01)
    assert "irregular_rr" not in analyze_ecg(rec).flags
    # the converted Philips file: sinus bradycardia at the device's 41/min, no extra beat at 1.19 s
    rec = read_ecg(shared_data / "vendor" / "philips-xml" / "ad4d3d80-d165_1-04_converted.xml")
    a = analyze_ecg(rec)
    assert a.r_peaks_s.size == 7 and abs(a.measured["hr_bpm"] - rec.measurements.hr_bpm) <= 1.0


def test_a_100_hz_record_is_analysed_with_noise_not_checked(shared_data):
    """PTB-XL's 100-Hz copies (records100) have no band above the ECG's 40 Hz to measure noise in (Nyquist
    50 Hz): the analysis says so with ``noise_not_checked`` (not blocking) instead of failing to design the
    noise filter, as it did, and the same ECG at 500 Hz keeps its measurements."""
    lo = analyze_ecg(read_ecg(shared_data / "ptbxl-sample/records100/00000/00136_lr"))
    hi = analyze_ecg(read_ecg(shared_data / "ptbxl-sample/records500/00000/00136_hr"))
    assert lo.fs_hz == 100.0 and "noise_not_checked" in lo.flags and "pacing_not_checked" in lo.flags
    assert lo.usable and "noise_not_checked" not in hi.flags
    assert abs(lo.measured["hr_bpm"] - hi.measured["hr_bpm"]) < 1.0
    assert abs(lo.measured["r_axis_deg"] - hi.measured["r_axis_deg"]) <= 10.0
