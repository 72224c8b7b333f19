"""How a person's heart shows in the ECG: the per-patient dipole phenotype and the beat wave tables.

This is where LV mass reaches the ECG, with effect sizes from the literature:

- QRS dipole magnitude rises with LV mass (``~ (LVM/ref)^0.55``) but is attenuated by body
  habitus: each BMI unit above 24 lowers voltages by about 2.5 % (Okin et al., JACC 1996;
  Abergel et al. 1996: obesity is the main cause of false-negative voltage criteria), voltages
  fall about 0.5 %/year of age, and are lower in women at the same mass (breast tissue and
  chest geometry; sex-specific Cornell cut-offs of Casale et al., Circulation 1987). A
  person-level log-normal factor (SD 0.36: lead-to-heart distance, conductivity, heart position)
  keeps single voltage criteria weak, as they are (Cornell vs. LVM r 0.2-0.4; Sokolow-Lyon
  sensitivity 20-30 % at about 90 % specificity; Pewsner et al., BMJ 2007).
- QRS duration rises about 5 ms per 100 g (Stewart et al. / Bacharova: ~ +5 ms per 100 g in
  echo and MR series), plus sex and height effects.
- QRS axis shifts leftward (~ -6 deg per 25 % more mass than expected for size) and the main
  vector turns posterior (deeper S in V1-V3: the Sokolow-Lyon and Cornell components).
- Secondary ST-T change ("strain": ST depression with the T vector turned away from QRS)
  appears with probability rising with indexed mass, more often in women at the same excess
  (Okin et al., Hypertension 2004, LIFE; Bacharova 2014).

Normal values (axes, intervals, wave amplitudes) follow the Chapman-Shaoxing GE MUSE
measurement table (Zheng et al. 2020, shared/data/chapman) and standard VCG references
(Draper et al., Circulation 1964: maximal spatial QRS vector about 1.5-2 mV).

    >>> import numpy as np
    >>> ph = sample_phenotype(np.random.default_rng(0), {"sex": "F", "age_years": 60, "height_cm": 158,
    ...     "weight_kg": 58, "bmi": 23.2, "bsa_m2": 1.597}, {"lvm_true_g": 95.0, "lvmi_true_g_m2": 59.5})
    >>> ph.conduction, beat_waves(ph, rr_ms=850.0).shape[1]
    ('normal', 5)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from elvmass.synth.dipole import unit_vector
from elvmass.synth.lvmass import LVH_CUTOFF_G_M2

REF_LVM_G = {"M": 118.0, "F": 87.0}  # cohort means per sex, the reference of the mass effects


@dataclass(frozen=True)
class PhenotypeModel:
    """Effect sizes linking patient and LV mass to the dipole (see module docstring)."""

    qrs_mv_male: float = 1.40  # main QRS vector magnitude at reference mass, BMI 24, age 55
    qrs_mv_female: float = 1.25  # before the mass effect (women's smaller LVM lowers it further)
    voltage_mass_exponent: float = 0.55
    voltage_per_bmi: float = -0.025
    voltage_per_year: float = -0.005
    voltage_person_sd: float = 0.36
    qrs_ms_male: float = 92.0
    qrs_ms_female: float = 84.0
    qrs_ms_per_g: float = 0.05  # +5 ms per 100 g
    qrs_ms_sd: float = 7.0
    axis_deg_mean: float = 33.0
    axis_per_year: float = -0.3
    axis_per_bmi: float = -1.3
    axis_per_log_mass: float = -25.0  # deg per unit log(LVM/expected)
    axis_sd: float = 13.0
    elevation_deg_mean: float = 5.0
    elevation_per_log_mass: float = 20.0
    elevation_sd: float = 9.0
    posterior_frac: float = 0.75  # posterior-leftward QRS forces (S in V1-V3), relative to the main vector
    posterior_per_log_mass: float = 0.5
    posterior_sd: float = 0.15
    strain_intercept: float = -2.7
    strain_per_g_m2: float = 0.09  # per g/m^2 above the sex cut-off
    strain_female: float = 0.5
    # Exclusion-type conduction (per patient) and rhythm propensity
    p_lbbb: float = 0.008
    p_rbbb: float = 0.013
    p_paced: float = 0.004
    p_af_patient: float = 0.02
    # Real-beat morphology (elvmass.synth.templates): the template supplies the person's natural
    # voltage, axes and intervals; these add what LV mass and body size change on top of it.
    use_templates: bool = True
    template_person_sd: float = 0.12  # extra person voltage factor (log SD) on top of the template's own
    template_qrs_sd_ms: float = 2.5
    template_hr_logsd: float = 0.07
    template_qtc_sd_ms: float = 6.0
    # fitted (elvmass.synth.fit, then one synthetic run): bring the pipeline-measured medians of the synthetic
    # cohort to those of the fit part of the real records (Sokolow-Lyon 1.74 mV; QRS and QT as measured)
    template_voltage_gain: float = 1.3
    template_qrs_offset_ms: float = -2.0
    # the template's own voltage is shrunk toward its sex's median by this power, so that LV mass (and not
    # the template's unknown real person) carries part of the voltage variance: exp(-shrink*log(M/M_sex))
    template_voltage_shrink: float = 0.4
    template_mass_exponent: float = 1.0
    template_qt_offset_ms: float = -10.0


@dataclass(frozen=True)
class Phenotype:
    """One patient's ECG-generating parameters (every field is written to truth.csv)."""

    sex: str
    conduction: str  # normal | LBBB | RBBB | paced
    af_prone: bool
    qrs_mv: float
    voltage_factor: float
    habitus_factor: float
    qrs_ms: float
    axis_deg: float
    elevation_deg: float
    septal_frac: float
    posterior_frac: float
    septal_axis_deg: float
    terminal_frac: float
    terminal_axis_deg: float
    terminal_elev_deg: float
    t_mv: float
    t_axis_deg: float
    t_elev_deg: float
    strain: bool
    strain_degree: float
    p_mv: float
    p_axis_deg: float
    p_ms: float
    pr_ms: float
    qtc_ms: float
    hr_bpm: float
    template: int = -1  # index into the real-beat library (-1: Gaussian-wave dipole model)
    qrs_scale: float = 1.0  # QRS voltage factor applied to the template
    axis_shift_deg: float = 0.0  # frontal QRS rotation imposed by the mass excess
    posterior_shift_deg: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def sample_phenotype(rng: np.random.Generator, patient: dict, mass: dict, model: PhenotypeModel = PhenotypeModel()) -> Phenotype:
    """Draw a patient's ECG phenotype from demographics and true LV mass."""
    sex = patient["sex"]
    male = sex == "M"
    lvm = mass["lvm_true_g"]
    log_mass = math.log(lvm / REF_LVM_G[sex])
    # mass relative to what body size predicts (remodelling), drives axis / posterior shift
    expected = REF_LVM_G[sex] * (patient["height_cm"] / (168.0 if male else 157.0)) ** 0.54 * (
        patient["weight_kg"] / (72.0 if male else 59.5)
    ) ** 0.61
    log_excess = math.log(lvm / expected)
    habitus = math.exp(model.voltage_per_bmi * (patient["bmi"] - 24.0))
    person = math.exp(rng.normal(0.0, model.voltage_person_sd))
    base = model.qrs_mv_male if male else model.qrs_mv_female
    qrs_mv = (
        base
        * math.exp(model.voltage_mass_exponent * log_mass)
        * habitus
        * math.exp(model.voltage_per_year * (patient["age_years"] - 55.0))
        * person
    )
    qrs_ms = (
        (model.qrs_ms_male if male else model.qrs_ms_female)
        + model.qrs_ms_per_g * (lvm - REF_LVM_G[sex])
        + 0.08 * (patient["height_cm"] - (168.0 if male else 157.0))
        + rng.normal(0.0, model.qrs_ms_sd)
    )
    qrs_ms = float(np.clip(qrs_ms, 68.0, 116.0))
    axis = (
        model.axis_deg_mean
        + model.axis_per_year * (patient["age_years"] - 55.0)
        + model.axis_per_bmi * (patient["bmi"] - 24.0)
        + model.axis_per_log_mass * log_excess
        + rng.normal(0.0, model.axis_sd)
    )
    axis = float(np.clip(axis, -50.0, 110.0))
    elevation = model.elevation_deg_mean + model.elevation_per_log_mass * log_excess + rng.normal(0.0, model.elevation_sd)
    cut = LVH_CUTOFF_G_M2[sex]
    logit = model.strain_intercept + model.strain_per_g_m2 * (mass["lvmi_true_g_m2"] - cut) + model.strain_female * (not male)
    strain = bool(rng.random() < 1.0 / (1.0 + math.exp(-logit)))
    strain_degree = float(rng.uniform(0.4, 1.0)) if strain else 0.0

    u = rng.random()
    if u < model.p_lbbb:
        conduction = "LBBB"
    elif u < model.p_lbbb + model.p_rbbb:
        conduction = "RBBB"
    elif u < model.p_lbbb + model.p_rbbb + model.p_paced:
        conduction = "paced"
    else:
        conduction = "normal"
    af_prone = bool(rng.random() < model.p_af_patient * (1.0 + 0.04 * max(0.0, patient["age_years"] - 60.0)))

    fields: dict = {}
    if model.use_templates and conduction == "normal":
        from elvmass.synth.templates import beat_library, choose_template

        lib = beat_library()
        k = choose_template(rng, sex, patient["age_years"])
        f = lib.fid_ms[k]
        t_qrs = float(f[3] - f[1])
        t_qt = float(f[4] - f[1])
        person_t = math.exp(rng.normal(0.0, model.template_person_sd))
        # the template carries its own person's voltage; mass, habitus and the extra person factor go on top
        same = lib.female == (not male)
        shrink = math.exp(-model.template_voltage_shrink * math.log(lib.qrs_mag_mv[k] / float(np.median(lib.qrs_mag_mv[same]))))
        scale = model.template_voltage_gain * shrink * math.exp(model.template_mass_exponent * log_mass) * habitus * person_t
        q_ms = float(np.clip(t_qrs + model.template_qrs_offset_ms + model.qrs_ms_per_g * (lvm - REF_LVM_G[sex]) + 0.08 * (patient["height_cm"] - (168.0 if male else 157.0))
                             + rng.normal(0.0, model.template_qrs_sd_ms), 62.0, 116.0))
        hr_t = float(np.clip(lib.hr_bpm[k] * math.exp(rng.normal(0.0, model.template_hr_logsd)), 46.0, 110.0))
        qtc_t = (t_qt + model.template_qt_offset_ms) / (60.0 / lib.hr_bpm[k]) ** (1.0 / 3.0)  # Fridericia, at the template's own rate
        fields = {
            "template": k,
            "qrs_scale": round(scale, 5),
            "qrs_mv": round(float(lib.qrs_mag_mv[k]) * scale, 5),
            "voltage_factor": round(person_t, 5),
            "qrs_ms": round(q_ms, 2),
            "axis_shift_deg": round(float(np.clip(model.axis_per_log_mass * log_excess, -25.0, 25.0)), 2),
            "posterior_shift_deg": round(float(np.clip(model.elevation_per_log_mass * log_excess, -20.0, 20.0)), 2),
            "hr_bpm": round(hr_t, 2),
            "qtc_ms": round(float(np.clip(qtc_t + 0.3 * (q_ms - t_qrs) + 12.0 * strain_degree + rng.normal(0.0, model.template_qtc_sd_ms), 360.0, 500.0)), 2),
        }
    ph = Phenotype(
        sex=sex,
        conduction=conduction,
        af_prone=af_prone,
        qrs_mv=round(qrs_mv, 5),
        voltage_factor=round(person, 5),
        habitus_factor=round(habitus, 5),
        qrs_ms=round(qrs_ms, 2),
        axis_deg=round(axis, 2),
        elevation_deg=round(float(elevation), 2),
        septal_frac=round(float(rng.uniform(0.08, 0.16)), 4),
        posterior_frac=round(float(np.clip(model.posterior_frac * math.exp(model.posterior_per_log_mass * log_excess + rng.normal(0.0, model.posterior_sd)), 0.15, 1.5)), 4),
        septal_axis_deg=round(float(rng.normal(165.0, 20.0)), 2),
        terminal_frac=round(float(np.clip(rng.normal(0.25, 0.07), 0.08, 0.5)), 4),
        terminal_axis_deg=round(float(rng.normal(235.0, 25.0)), 2),
        terminal_elev_deg=round(float(rng.normal(35.0, 12.0)), 2),
        t_mv=round(float(0.42 * (qrs_mv / 1.6) ** 0.4 * math.exp(rng.normal(0.0, 0.22))), 5),
        t_axis_deg=round(float(axis + rng.normal(-2.0, 15.0)), 2),
        t_elev_deg=round(float(rng.normal(-22.0, 12.0)), 2),
        strain=strain,
        strain_degree=round(strain_degree, 4),
        p_mv=round(float(np.clip(rng.normal(0.15, 0.035), 0.06, 0.3)), 5),
        p_axis_deg=round(float(rng.normal(35.0, 14.0)), 2),
        p_ms=round(float(np.clip(rng.normal(102.0, 10.0), 75.0, 135.0)), 2),
        pr_ms=round(float(np.clip(rng.normal(155.0 + 0.5 * (patient["age_years"] - 55.0), 20.0), 110.0, 240.0)), 2),
        qtc_ms=round(float(np.clip(rng.normal(412.0 if male else 422.0, 18.0) + 0.3 * (qrs_ms - 90.0) + 12.0 * strain_degree, 360.0, 500.0)), 2),
        hr_bpm=round(float(np.clip(rng.normal(68.0 if male else 72.0, 10.0), 48.0, 105.0)), 2),
    )
    return replace(ph, **fields) if fields else ph


def _row(centre: float, width: float, vec: np.ndarray) -> list[float]:
    return [centre, width, float(vec[0]), float(vec[1]), float(vec[2])]


def _qt_ms(ph: Phenotype, rr_ms: float) -> float:
    return ph.qtc_ms * (rr_ms / 1000.0) ** (1.0 / 3.0)  # Fridericia


def beat_waves(
    ph: Phenotype,
    rr_ms: float,
    *,
    kind: str = "sinus",
    rotation: np.ndarray | None = None,
    gain: float = 1.0,
) -> np.ndarray:
    """The (k, 5) wave table of one beat; time 0 is the peak of the main QRS wave.

    ``kind``: ``sinus`` (with P), ``af`` (no P), ``pvc`` (premature ventricular beat),
    ``pac`` (premature atrial beat, other P); the patient's conduction (LBBB/RBBB/paced) shapes
    the QRS. ``rotation`` (3x3) and ``gain`` model electrode placement differences between
    recordings of the same person.
    """
    rows: list[list[float]] = []
    qrs_mv = ph.qrs_mv
    main_dir = unit_vector(ph.axis_deg, ph.elevation_deg)
    d = ph.qrs_ms
    conduction = ph.conduction if kind != "pvc" else "pvc"

    if conduction == "normal":
        on = -0.45 * d
        rows.append(_row(on + 0.17 * d, 0.075 * d, ph.septal_frac * qrs_mv * unit_vector(ph.septal_axis_deg, -55.0)))
        rows.append(_row(0.0, 0.12 * d, qrs_mv * main_dir))
        rows.append(_row(0.2 * d, 0.09 * d, ph.posterior_frac * qrs_mv * unit_vector(ph.axis_deg - 15.0, 75.0)))
        rows.append(_row(on + 0.80 * d, 0.08 * d, ph.terminal_frac * qrs_mv * unit_vector(ph.terminal_axis_deg, ph.terminal_elev_deg)))
        total_d = d
    elif conduction == "RBBB":
        on = -0.45 * d
        rows.append(_row(on + 0.17 * d, 0.075 * d, ph.septal_frac * qrs_mv * unit_vector(ph.septal_axis_deg, -55.0)))
        rows.append(_row(0.0, 0.12 * d, qrs_mv * main_dir))
        rows.append(_row(0.2 * d, 0.09 * d, ph.posterior_frac * qrs_mv * unit_vector(ph.axis_deg - 15.0, 75.0)))
        rows.append(_row(on + 0.80 * d, 0.08 * d, 0.5 * ph.terminal_frac * qrs_mv * unit_vector(ph.terminal_axis_deg, 0.0)))
        # delayed right-ventricular activation: slow terminal rightward-anterior forces (R' in V1, wide S in I/V6)
        rows.append(_row(on + d + 18.0, 16.0, 0.55 * qrs_mv * unit_vector(175.0, -50.0)))
        total_d = d + 45.0
    elif conduction in ("LBBB", "paced", "pvc"):
        if conduction == "LBBB":
            total_d, direction, mag = 140.0 + (d - 90.0) * 0.8, unit_vector(ph.axis_deg - 25.0, 45.0), 1.35
        elif conduction == "paced":
            total_d, direction, mag = 165.0, unit_vector(-65.0, 35.0), 1.3
        else:
            seed_angle = (ph.axis_deg * 7.3 + ph.qrs_ms * 3.1) % 360.0
            total_d, direction, mag = 150.0, unit_vector(seed_angle + 140.0, -20.0), 1.6
        on = -0.45 * total_d
        rows.append(_row(on + 0.32 * total_d, 0.13 * total_d, 0.6 * mag * qrs_mv * direction))
        rows.append(_row(on + 0.58 * total_d, 0.13 * total_d, 0.7 * mag * qrs_mv * direction))
        if conduction == "paced":
            rows.append(_row(on - 1.0, 0.9, 4.0 * unit_vector(-80.0, 10.0)))  # pacing spike
    else:
        raise ValueError(f"unknown conduction {conduction!r}")

    qt = _qt_ms(ph, rr_ms) + max(0.0, total_d - d)
    t_end = on + qt
    t_dir = unit_vector(ph.t_axis_deg, ph.t_elev_deg)
    t_mv = ph.t_mv
    if conduction in ("LBBB", "paced", "pvc"):
        # secondary repolarisation: discordant to the wide QRS
        q_dir = rows[-2 if conduction == "paced" else -1][2:]
        q_dir = np.asarray(q_dir) / (np.linalg.norm(q_dir) + 1e-12)
        t_dir = -q_dir
        t_mv = 0.5 * min(ph.qrs_mv, 2.5) * 0.6
        rows.append(_row(on + total_d + 0.25 * (qt - total_d), 0.12 * qt, 0.12 * t_dir))
    elif ph.strain:
        s = ph.strain_degree
        blend = (1.0 - s) * t_dir - s * main_dir
        t_dir = blend / (np.linalg.norm(blend) + 1e-12)
        t_mv = t_mv * (0.8 + 0.5 * s)
        rows.append(_row(on + total_d + 0.25 * (qt - total_d), 0.12 * qt, -0.10 * s * main_dir))
    w2 = 0.105 * qt
    c2 = t_end - 2.4 * w2
    rows.append(_row(c2 - 0.09 * qt, 0.14 * qt, 0.55 * t_mv * t_dir))
    rows.append(_row(c2, w2, 0.70 * t_mv * t_dir))

    if kind in ("sinus", "pac") and conduction != "pvc":
        pr = ph.pr_ms if kind == "sinus" else ph.pr_ms * 0.9
        p_axis = ph.p_axis_deg if kind == "sinus" else ph.p_axis_deg - 70.0
        p_on = on - pr
        pw = ph.p_ms
        rows.append(_row(p_on + 0.36 * pw, 0.16 * pw, 0.6 * ph.p_mv * unit_vector(p_axis + 15.0, -25.0)))
        rows.append(_row(p_on + 0.64 * pw, 0.16 * pw, 0.6 * ph.p_mv * unit_vector(p_axis - 15.0, 30.0)))

    table = np.asarray(rows, dtype=np.float64)
    if rotation is not None:
        table[:, 2:] = table[:, 2:] @ rotation.T
    if gain != 1.0:
        spike = table[:, 1] < 2.0
        table[~spike, 2:] *= gain
    return table


def qrs_duration_ms(ph: Phenotype) -> float:
    """The QRS duration the model's morphology implies (what a perfect device would measure)."""
    if ph.conduction == "normal":
        return ph.qrs_ms
    if ph.conduction == "RBBB":
        return ph.qrs_ms + 45.0
    if ph.conduction == "LBBB":
        return 140.0 + (ph.qrs_ms - 90.0) * 0.8
    return 165.0


__all__ = ["REF_LVM_G", "Phenotype", "PhenotypeModel", "beat_waves", "qrs_duration_ms", "sample_phenotype"]
