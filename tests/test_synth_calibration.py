"""Calibration of the internal profile against targets from the literature and from real device data,
on n = 300 patients, measured the way a user would (LVM from imaging.csv; ECG criteria by elvmass's own
signal pipeline on the written MUSE files; cart measurements as written into the files).

The targets are written here, with their sources, not imported from the generator: a target the
generator defines for itself cannot catch the generator drifting.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from elvmass.synth import SynthConfig, generate_cohort
from elvmass.synth.report import format_report, synth_report

#: (low, high) and where each range comes from.
LITERATURE_TARGETS: dict[str, tuple[float, float, str]] = {
    # CT-derived LV mass in the paper's cohort (Pan et al., EHJ Digit Health 2025: mean about 110 g with
    # men > women) and CT/CMR series of Asian adults (men about 110-130 g, women 80-100 g; SD 15-30 g)
    "lvm_mean_male_g": (110.0, 130.0, "Pan 2025; Asian CT/CMR series"),
    "lvm_mean_female_g": (80.0, 100.0, "Pan 2025; Asian CT/CMR series"),
    "lvm_sd_male_g": (18.0, 32.0, "CT/CMR series"),
    "lvm_sd_female_g": (13.0, 26.0, "CT/CMR series"),
    # LVH by the paper's CT cut-offs (72 / 55 g/m^2) in a CCTA referral population
    "lvh_prevalence": (0.20, 0.35, "Pan 2025 (PPV 0.65 at sens 0.47 / spec 0.89 implies ~25-35 %)"),
    # LV mass vs body size: r 0.5-0.85 (de Simone et al. JACC 1992 / Circulation 1995; MESA, Bluemke 2008)
    "r_lvm_weight": (0.45, 0.85, "de Simone 1992/1995; Bluemke 2008"),
    "r_lvm_bsa": (0.45, 0.85, "de Simone 1992/1995; Bluemke 2008"),
    # single voltage criteria correlate weakly with imaging LV mass (r 0.15-0.45) and Sokolow-Lyon has
    # sensitivity 10-35 % at specificity 85-97 % (Pewsner et al., BMJ 2007, meta-analysis; Casale 1987)
    "r_lvm_cornell": (0.15, 0.45, "Pewsner 2007; Casale 1987"),
    "r_lvm_sokolow": (0.15, 0.45, "Pewsner 2007"),
    # Pewsner 2007 pools sensitivities of about 0.1-0.35; the lower bound is relaxed to 0.03 because the real
    # PTB-XL/LUDB voltages the generator is fitted to exceed 3.5 mV in only 3 % of records (docs/synth.md)
    "sokolow_sensitivity": (0.03, 0.35, "Pewsner 2007, relaxed: see docs/synth.md"),
    # upper bound 0.99, not 0.97: with real voltages (Sokolow-Lyon > 3.5 mV in 3 % of real records) false
    # positives are rarer than in Pewsner's pooled studies (docs/synth.md)
    "sokolow_specificity": (0.85, 0.99, "Pewsner 2007, relaxed: see docs/synth.md"),
}

#: Cart measurements vs the 10,646 GE MUSE measurements of Chapman-Shaoxing (Zheng et al., Sci Data 2020),
#: sinus rhythms without bundle branch block: how far the synthetic median may lie from the real one.
#: The R axis is checked against the real beats the morphology comes from instead (PTB-XL / LUDB, European;
#: Chapman is Chinese, median R axis 41-48 deg, PTB-XL about 21 deg): test_r_axis_follows_the_real_fit_records.
CHAPMAN_TOLERANCE = {"QRSDuration": 8.0, "QTInterval": 25.0, "VentricularRate": 8.0, "TAxis": 20.0}
DEVICE_COLUMN = {"QRSDuration": "device_qrs_ms", "QTInterval": "device_qt_ms", "VentricularRate": "device_hr_bpm",
                 "RAxis": "device_r_axis_deg", "TAxis": "device_t_axis_deg"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth300")
    generate_cohort(SynthConfig(n=300, seed=0), out)
    return out


@pytest.fixture(scope="module")
def report(cohort):
    return synth_report(cohort)


def _flat(rep: dict) -> dict:
    crit = rep["criteria_vs_lvh"].get("sokolow_lyon", {})
    return {
        "lvm_mean_male_g": rep["lvm_g"]["M"]["mean"], "lvm_mean_female_g": rep["lvm_g"]["F"]["mean"],
        "lvm_sd_male_g": rep["lvm_g"]["M"]["sd"], "lvm_sd_female_g": rep["lvm_g"]["F"]["sd"],
        "lvh_prevalence": rep["lvh_prevalence"], "r_lvm_weight": rep["r_lvm"]["weight"], "r_lvm_bsa": rep["r_lvm"]["bsa"],
        "r_lvm_cornell": rep["r_lvm"]["cornell_voltage"], "r_lvm_sokolow": rep["r_lvm"]["sokolow_lyon"],
        "sokolow_sensitivity": crit.get("sensitivity", math.nan), "sokolow_specificity": crit.get("specificity", math.nan),
    }


def test_every_literature_target_is_met(report):
    values = _flat(report)
    failed = {k: (values[k], lo, hi, src) for k, (lo, hi, src) in LITERATURE_TARGETS.items() if not lo <= values[k] <= hi}
    assert not failed, f"{failed}\n{format_report(report)}"


def test_lvm_by_sex_and_the_ecg_carries_mass_but_single_criteria_are_weak(report):
    assert report["lvm_g"]["M"]["mean"] - report["lvm_g"]["F"]["mean"] > 20
    r = report["r_lvm"]
    assert r["qrs_duration"] > 0.1
    assert r["weight"] > r["sokolow_lyon"]  # body size predicts more than one voltage criterion
    crit = report["criteria_vs_lvh"]["sokolow_lyon"]
    assert crit["specificity"] > crit["sensitivity"]
    assert report["n_ecgs_measured"] >= 240  # most first ECGs usable


def test_cart_measurements_match_ge_muse_by_sex(cohort, shared_data):
    truth = pd.read_csv(cohort / "truth.csv")
    t = truth[truth.eligible_ecg]
    ch = pd.read_csv(shared_data / "chapman" / "Diagnostics.csv")
    ch = ch[ch.Rhythm.isin(["SR", "SB", "ST", "SA"]) & ~ch.Beat.fillna("").str.contains("BBB|PACE")]
    ch = ch[ch.PatientAge.between(30, 85)]
    for sex, gender in (("M", "MALE"), ("F", "FEMALE")):
        real, syn = ch[ch.Gender == gender], t[t.sex == sex]
        for col, tol in CHAPMAN_TOLERANCE.items():
            diff = syn[DEVICE_COLUMN[col]].median() - real[col].median()
            assert abs(diff) <= tol, f"{sex} {col}: synthetic median {syn[DEVICE_COLUMN[col]].median()} vs GE MUSE {real[col].median()}"


def test_r_axis_follows_the_real_fit_records(cohort):
    """Device R axis by sex vs the net-area QRS axis of the real PTB-XL/LUDB median beats (the fit part) of
    people aged 45-72 (the axis turns leftward with age; the cohort is 58 +- 11 years), computed here from
    the stored real beats (I and aVF = II - I/2 over their QRS), not from generator output."""
    import numpy as np

    from elvmass.synth.templates import beat_library

    lib = beat_library()
    real = {}
    for sex, fem in (("M", False), ("F", True)):
        ax = []
        keep = (lib.female == fem) & (lib.age_years >= 45) & (lib.age_years <= 72)
        for b, f in zip(lib.beats_mv[keep], lib.fid_ms[keep]):
            a, c = int(f[1] * lib.fs_hz / 1000), int(f[3] * lib.fs_hz / 1000) + 1
            i, avf = b[0, a:c].sum(), (b[1, a:c] - b[0, a:c] / 2).sum()
            ax.append(np.degrees(np.arctan2(avf, i)))
        real[sex] = float(np.median(ax))
    truth = pd.read_csv(cohort / "truth.csv")
    t = truth[truth.eligible_ecg]
    for sex in ("M", "F"):
        syn = float(t[t.sex == sex].device_r_axis_deg.median())
        assert abs(syn - real[sex]) <= 15.0, f"{sex}: synthetic R axis median {syn} vs real fit records {real[sex]:.1f}"
