"""Voltage criteria on synthetic beats whose amplitudes are set by hand (500 Hz, beat window 0-900 ms,
QRS onset 300 ms, J point 390 ms, isoelectric level +0.1 mV in every lead to check baseline handling)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from elvmass.record import LEAD_INDEX as L
from elvmass.signal import voltage_criteria
from elvmass.signal.criteria import qrs_amplitudes, romhilt_estes_points

FS = 500.0
FID = {"p_on": 150.0, "qrs_on": 300.0, "qrs_off": 390.0, "t_off": 700.0}
t = np.arange(450)


def bump(center: int, amp: float, width: float = 4.0) -> np.ndarray:
    return amp * np.exp(-0.5 * ((t - center) / width) ** 2)


def base_beat() -> np.ndarray:
    return np.full((12, 450), 0.1)


def lvh_voltage_beat() -> np.ndarray:
    b = base_beat()
    b[L["V1"]] += bump(180, -2.0)  # S(V1) 2.0
    b[L["V5"]] += bump(165, 1.6)  # R(V5) 1.6
    b[L["V6"]] += bump(165, 1.2)
    b[L["aVL"]] += bump(165, 1.3)  # R(aVL) 1.3
    b[L["V3"]] += bump(180, -1.6)  # S(V3) 1.6
    b[L["V4"]] += bump(165, 0.8) + bump(180, -0.9)  # S(V4) 0.9
    return b


def test_amplitudes_against_isoelectric_level():
    r, s = qrs_amplitudes(lvh_voltage_beat(), FS, FID)
    assert r[L["V5"]] == pytest.approx(1.6, abs=1e-3)
    assert s[L["V1"]] == pytest.approx(2.0, abs=1e-3)
    assert r[L["V1"]] == pytest.approx(0.0, abs=1e-6)
    assert s[L["V4"]] == pytest.approx(0.9, abs=0.01)


def test_hand_checked_values_men():
    c = voltage_criteria(lvh_voltage_beat(), FS, FID, "M")
    assert c["sokolow_lyon_mv"] == pytest.approx(3.6, abs=0.01) and c["sokolow_lyon_positive"] is True
    assert c["cornell_voltage_mv"] == pytest.approx(2.9, abs=0.01) and c["cornell_voltage_positive"] is True
    assert c["cornell_product_mv_ms"] == pytest.approx(2.9 * 90, abs=1.0) and c["cornell_product_positive"] is True
    assert c["peguero_lo_presti_mv"] == pytest.approx(2.0 + 0.9, abs=0.02) and c["peguero_lo_presti_positive"] is True
    # only QRS >= 90 ms scores: no amplitude item (limb max 1.3 mV), no strain, no P, no left axis
    assert c["romhilt_estes_points"] == 1 and c["romhilt_estes_positive"] is False


def test_sex_specific_thresholds():
    b = lvh_voltage_beat()
    b[L["aVL"]] = 0.1 + bump(165, 0.6)  # Cornell voltage 2.2 mV: negative for men (> 2.8), positive for women (> 2.0)
    men, women = voltage_criteria(b, FS, FID, "M"), voltage_criteria(b, FS, FID, "F")
    assert men["cornell_voltage_mv"] == pytest.approx(2.2, abs=0.01)
    assert men["cornell_voltage_positive"] is False and women["cornell_voltage_positive"] is True
    assert women["cornell_product_mv_ms"] == pytest.approx((2.2 + 0.6) * 90, abs=1.0)
    assert men["cornell_product_positive"] is False and women["cornell_product_positive"] is True  # 198 vs 252
    # Peguero: 2.9 mV is positive for both; lower S(V4) to 0.4 -> 2.4 mV: women only (>= 2.3, men >= 2.8)
    b[L["V4"]] = 0.1 + bump(165, 0.8) + bump(180, -0.4)
    assert voltage_criteria(b, FS, FID, "M")["peguero_lo_presti_positive"] is False
    assert voltage_criteria(b, FS, FID, "F")["peguero_lo_presti_positive"] is True
    unknown = voltage_criteria(b, FS, FID, None)
    assert unknown["cornell_voltage_positive"] is None and unknown["peguero_lo_presti_positive"] is None
    assert unknown["sokolow_lyon_positive"] is True  # not sex-specific


def test_sokolow_lyon_threshold_boundary():
    b = base_beat()
    b[L["V1"]] += bump(180, -1.9)
    b[L["V6"]] += bump(165, 1.5)
    c = voltage_criteria(b, FS, FID, "M")
    assert c["sokolow_lyon_mv"] == pytest.approx(3.4, abs=0.01) and c["sokolow_lyon_positive"] is False


def test_romhilt_estes_all_items():
    b = base_beat()
    b[L["V5"]] += bump(185, 3.2)  # R(V5) 3.2 mV -> amplitude 3; peak 70 ms after onset -> intrinsicoid 1
    b[L["V5"], 205:225] -= 0.1  # ST depressed 0.1 mV at J+20..J+70 ms
    b[L["V5"]] += bump(300, -0.3, 20.0)  # inverted T -> strain 3
    b[L["V6"]] += bump(170, 1.0)
    b[L["I"]] += bump(170, 1.0)  # QRS axis: net positive in I, twice as negative in aVF -> about -63 deg -> 2
    b[L["aVF"]] += bump(170, -2.0)
    b[L["V1"], 110:141] -= 0.15  # terminal negative P in V1: 0.15 mV deep, 62 ms long -> 3
    r, s = qrs_amplitudes(b, FS, FID)
    pts = romhilt_estes_points(b, FS, FID, r, s)
    assert pts == {"amplitude": 3, "st_t_strain": 3, "left_atrial": 3, "left_axis": 2, "qrs_duration": 1, "intrinsicoid": 1}
    c = voltage_criteria(b, FS, FID, "M")
    assert c["romhilt_estes_points"] == 13 and c["romhilt_estes_positive"] is True
    # without the P-terminal force, the strain and the axis: 3 + 1 + 1 = 5 -> still positive; without the
    # amplitude too (R(V5) 2.5 mV): 2 -> negative
    plain = base_beat()
    plain[L["V5"]] += bump(185, 3.2)
    plain[L["V6"]] += bump(170, 1.0)
    assert voltage_criteria(plain, FS, FID, "M")["romhilt_estes_points"] == 5
    plain[L["V5"]] = 0.1 + bump(185, 2.5)
    c = voltage_criteria(plain, FS, FID, "M")
    assert c["romhilt_estes_points"] == 2 and c["romhilt_estes_positive"] is False and c["romhilt_estes_probable"] is False


def test_missing_fiducials_give_nan_not_calls():
    c = voltage_criteria(base_beat(), FS, dict(FID, qrs_on=math.nan), "M")
    assert math.isnan(c["sokolow_lyon_mv"]) and c["sokolow_lyon_positive"] is None


def test_input_validation():
    with pytest.raises(ValueError, match="12"):
        voltage_criteria(np.zeros((8, 450)), FS, FID, "M")
    with pytest.raises(ValueError, match="sex"):
        voltage_criteria(base_beat(), FS, FID, "male")


# ---- the published cut-offs exactly, on beats of rectangular deflections (a zero baseline, so each
# amplitude is exactly the value set; added for the mutation run of scripts/mutation signal)

def _rect_beat(**amps) -> np.ndarray:
    """Zero beat; amps maps lead -> mV of a rectangular deflection from 20 to 50 ms after QRS onset."""
    b = np.zeros((12, 450))
    for lead, a in amps.items():
        b[L[lead], 160:175] = a
    return b


FID80 = {"p_on": 150.0, "qrs_on": 300.0, "qrs_off": 380.0, "t_off": 700.0}  # QRS 80 ms: no duration point


@pytest.mark.parametrize("sv1, rv5, positive", [(-2.0, 1.5, True), (-2.0, 1.25, False)])
def test_sokolow_lyon_is_positive_at_exactly_3_5_mv(sv1, rv5, positive):
    c = voltage_criteria(_rect_beat(V1=sv1, V5=rv5), FS, FID80, None)
    assert c["sokolow_lyon_mv"] == -sv1 + rv5 and c["sokolow_lyon_positive"] is positive


def test_cornell_strict_and_peguero_product_inclusive_at_the_cutoff():
    # Cornell voltage R(aVL) 2.0 + S(V3) 0.75 = 2.75 < 2.8 (men), and exactly 2.0 for women is not positive (> 2.0)
    men = voltage_criteria(_rect_beat(aVL=2.0, V3=-0.75), FS, FID80, "M")
    assert men["cornell_voltage_mv"] == 2.75 and men["cornell_voltage_positive"] is False
    women = voltage_criteria(_rect_beat(aVL=1.5, V3=-0.5), FS, FID80, "F")
    assert women["cornell_voltage_mv"] == 2.0 and women["cornell_voltage_positive"] is False
    # Peguero-Lo Presti: deepest S (V4 1.25) + S(V4) 1.25 = 2.5: >= 2.3 women, < 2.8 men
    peg_f = voltage_criteria(_rect_beat(V4=-1.15), FS, FID80, "F")
    assert peg_f["peguero_lo_presti_mv"] == pytest.approx(2.3) and peg_f["peguero_lo_presti_positive"] is True
    peg_m = voltage_criteria(_rect_beat(V4=-1.4, V1=-0.5), FS, FID80, "M")
    assert peg_m["peguero_lo_presti_mv"] == 2.8 and peg_m["peguero_lo_presti_positive"] is True
    # Cornell product: (R(aVL) + S(V3)) x 80 ms = 3.05 x 80 = 244 mV.ms exactly (positive, >= 244)
    prod = voltage_criteria(_rect_beat(aVL=2.0, V3=-1.05), FS, FID80, "M")
    assert prod["cornell_product_mv_ms"] == pytest.approx(244.0) and prod["cornell_product_positive"] is True
    # women add 0.6 mV: (1.0 + 0.6) x 80 = 128
    w = voltage_criteria(_rect_beat(aVL=1.0), FS, FID80, "F")
    assert w["cornell_product_mv_ms"] == pytest.approx(128.0)


def test_peguero_women_just_below():
    c = voltage_criteria(_rect_beat(V4=-1.1), FS, FID80, "F")  # 2.2 mV
    assert c["peguero_lo_presti_positive"] is False


def test_romhilt_estes_four_is_probable_five_is_positive():
    # limb lead R exactly 2.0 mV: amplitude item (>= 2.0) 3 points; QRS 90 ms: 1 point -> 4, probable only
    four = voltage_criteria(_rect_beat(I=2.0), FS, FID, None)
    assert four["romhilt_estes_points"] == 4
    assert four["romhilt_estes_probable"] is True and four["romhilt_estes_positive"] is False
    # lead I +2.0 and aVF -2.0: axis -45 degrees (left axis, 2 points) + amplitude 3, QRS 80 ms -> 5, positive
    five = voltage_criteria(_rect_beat(I=2.0, aVF=-2.0), FS, FID80, None)
    assert five["romhilt_estes_points"] == 5 and five["romhilt_estes_positive"] is True
    # just under every amplitude limit: no amplitude points
    none = voltage_criteria(_rect_beat(I=1.99, V1=-2.99, V5=2.99), FS, FID80, None)
    assert none["romhilt_estes_points"] == 0 and none["romhilt_estes_probable"] is False


@pytest.mark.parametrize("lead, amp", [("V1", -3.0), ("V2", -3.0), ("V5", 3.0), ("V6", 3.0), ("aVR", -2.0)])
def test_romhilt_estes_amplitude_item_at_exactly_its_limit(lead, amp):
    r, s = qrs_amplitudes(_rect_beat(**{lead: amp}), FS, FID80)
    assert romhilt_estes_points(_rect_beat(**{lead: amp}), FS, FID80, r, s)["amplitude"] == 3


def test_qrs_window_includes_the_offset_sample_and_not_before_onset():
    b = np.zeros((12, 450))
    b[L["V5"], 195] = 1.0  # the J-point sample itself (390 ms at 500 Hz) is inside the QRS
    b[L["V5"], 149] = 5.0  # one sample before onset is not
    r, s = qrs_amplitudes(b, FS, FID)
    assert r[L["V5"]] == 1.0 and s[L["V5"]] == 0.0
    b[L["V5"], 196] = 2.0  # one after J is not
    assert qrs_amplitudes(b, FS, FID)[0][L["V5"]] == 1.0
    r, s = qrs_amplitudes(b, FS, {"qrs_on": 300.0, "qrs_off": 300.0})  # zero-length QRS: no amplitudes
    assert r.shape == (12,) and np.isnan(r).all() and np.isnan(s).all()
    assert np.isnan(qrs_amplitudes(b, FS, {"qrs_off": 390.0})[0]).all()
    assert np.isnan(qrs_amplitudes(b, FS, {"qrs_on": 300.0})[1]).all()


def test_missing_values_are_nan_and_calls_none():
    c = voltage_criteria(np.zeros((12, 450)), FS, {"qrs_on": np.nan, "qrs_off": 390.0}, "M")
    assert c["romhilt_estes_probable"] is None and c["sokolow_lyon_positive"] is None
    assert math.isnan(c["romhilt_estes_points"]) and math.isnan(c["cornell_product_mv_ms"])
