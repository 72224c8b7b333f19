"""Who is in the synthetic cohort: age, sex, height, weight and blood-pressure load.

The default (``internal``) profile mimics the adults referred for coronary CT angiography in a
Taiwanese tertiary hospital, the cohort of Pan et al. (EHJ Digital Health 2025): about 60 % men,
ages 30-85 (mean near 58), body size from the Taiwan Nutrition and Health Survey
(NAHSIT 2013-2016: men about 169 cm / BMI 25, women about 157 cm / BMI 24, older adults
shorter), and hypertension in roughly half, rising with age and BMI as in CCTA referral
series. The ``external`` profile is a heavier western population (men 176 cm / BMI 28,
women 162 cm / BMI 28; e.g. the US CT cohort of Kang et al. 2017), used for the
echocardiography-based external validation set.

Height and weight are drawn jointly by sex: height (normal, shrinking slowly with age), then BMI
(log-normal, independent of height), then ``weight = BMI x height^2``, which gives the usual
height-weight correlation of about 0.4-0.5 within each sex.

    >>> import numpy as np
    >>> p = sample_patient(np.random.default_rng(0), POPULATIONS["internal"])
    >>> sorted(p)[:4]
    ['age_years', 'bmi', 'bsa_m2', 'height_cm']
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PopulationProfile:
    """Parameters of one source population (all means/SDs per sex: ``_m`` men, ``_f`` women)."""

    name: str
    male_fraction: float = 0.60
    age_mean: float = 58.0
    age_sd: float = 11.0
    age_min: float = 30.0
    age_max: float = 85.0
    height_mean_m: float = 169.0  # cm at age 55
    height_mean_f: float = 157.0
    height_sd_m: float = 6.0
    height_sd_f: float = 5.5
    height_per_year_m: float = -0.12  # cm per year of age (cohort effect + shrinkage)
    height_per_year_f: float = -0.15
    bmi_median_m: float = 25.2
    bmi_median_f: float = 24.0
    bmi_logsd_m: float = 0.13
    bmi_logsd_f: float = 0.16
    # Hypertension: logit = intercept + per_year*(age-58) + per_bmi*(bmi-25) + male*is_male
    htn_intercept: float = -0.25
    htn_per_year: float = 0.06
    htn_per_bmi: float = 0.12
    htn_male: float = 0.20


POPULATIONS: dict[str, PopulationProfile] = {
    "internal": PopulationProfile(name="internal"),
    "external": PopulationProfile(
        name="external",
        male_fraction=0.55,
        age_mean=60.0,
        age_sd=11.5,
        height_mean_m=176.0,
        height_mean_f=162.0,
        height_sd_m=7.0,
        height_sd_f=6.5,
        height_per_year_m=-0.08,
        height_per_year_f=-0.10,
        bmi_median_m=28.0,
        bmi_median_f=27.5,
        bmi_logsd_m=0.15,
        bmi_logsd_f=0.19,
        htn_intercept=0.10,
    ),
}


def bsa_mosteller_m2(height_cm: float, weight_kg: float) -> float:
    """Body surface area (Mosteller 1987): sqrt(height_cm * weight_kg / 3600)."""
    return math.sqrt(height_cm * weight_kg / 3600.0)


def _truncated_normal(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    for _ in range(100):
        x = rng.normal(mean, sd)
        if lo <= x <= hi:
            return float(x)
    return float(min(max(mean, lo), hi))


def sample_patient(rng: np.random.Generator, profile: PopulationProfile) -> dict:
    """One patient's demographics and hypertension state (a dict of plain floats / strings).

    Keys: sex ('M'/'F'), age_years, height_cm, weight_kg, bmi, bsa_m2, hypertension (bool),
    htn_burden (0 without hypertension; else a gamma-distributed load with mean 1 standing for
    duration x control, which scales its effect on LV mass).
    """
    male = rng.random() < profile.male_fraction
    sfx = "m" if male else "f"
    age = _truncated_normal(rng, profile.age_mean, profile.age_sd, profile.age_min, profile.age_max)
    h_mean = getattr(profile, f"height_mean_{sfx}") + getattr(profile, f"height_per_year_{sfx}") * (age - 55.0)
    height = _truncated_normal(rng, h_mean, getattr(profile, f"height_sd_{sfx}"), h_mean - 3.5 * 7, h_mean + 3.5 * 7)
    bmi = float(np.exp(rng.normal(np.log(getattr(profile, f"bmi_median_{sfx}")), getattr(profile, f"bmi_logsd_{sfx}"))))
    bmi = min(max(bmi, 15.5), 50.0)
    weight = bmi * (height / 100.0) ** 2
    logit = (
        profile.htn_intercept
        + profile.htn_per_year * (age - 58.0)
        + profile.htn_per_bmi * (bmi - 25.0)
        + profile.htn_male * male
    )
    htn = bool(rng.random() < 1.0 / (1.0 + math.exp(-logit)))
    burden = float(rng.gamma(2.0, 0.5)) if htn else 0.0
    return {
        "sex": "M" if male else "F",
        "age_years": round(age, 1),
        "height_cm": round(height, 1),
        "weight_kg": round(weight, 1),
        "bmi": round(weight / (round(height, 1) / 100.0) ** 2, 2),
        "bsa_m2": round(bsa_mosteller_m2(round(height, 1), round(weight, 1)), 4),
        "hypertension": htn,
        "htn_burden": round(burden, 4),
    }


__all__ = ["POPULATIONS", "PopulationProfile", "bsa_mosteller_m2", "sample_patient"]
