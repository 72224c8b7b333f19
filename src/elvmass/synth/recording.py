"""One 10-second recording: rhythm, ectopy, electrode problems, noise, and what the cart reports.

- Rhythm: sinus with respiratory sinus arrhythmia (+-4 % at 0.25 Hz) and beat-to-beat jitter
  (1.5 %); atrial fibrillation with irregular RR (gamma, CV 0.2), no P waves and 4-8 Hz
  fibrillatory waves; premature ventricular (about 4 % of recordings) and atrial (2 %) beats,
  rates typical of resting ECG archives (e.g. Chapman-Shaoxing statements).
- Noise, as in the MIT-BIH Noise Stress Test and the PhysioNet/CinC 2011 quality challenge:
  baseline wander (0.05-0.5 Hz, up to 0.3 mV), muscle (EMG-like high-pass noise, typically
  2-8 uV at rest, 6 % of recordings tremulous at 12-40 uV), 50/60 Hz interference in a minority of
  recordings, and amplifier noise. Noise is added to the 8 independent leads (I, II, V1-V6)
  and III, aVR, aVL, aVF are derived after it, as a cart does, so Einthoven and Goldberger hold.
- Electrode problems: left/right arm reversal (0.4 %: I inverted, II and III swapped) and a
  disconnected precordial electrode (0.4 %: a flat lead).
- The cart's own measurements (``DeviceMeasurements``) are the model's true values seen through
  measurement noise (QRS duration SD 5 ms, axes SD 6 deg: the inter-device differences reported
  by Kligfield et al., J Electrocardiol 2007), on a noise-free template beat; its statements
  follow the usual GE 12SL wording, including voltage-based LVH from its own template
  amplitudes (Sokolow-Lyon > 3.5 mV or Cornell > 2.8/2.0 mV).

    >>> import numpy as np
    >>> from elvmass.synth.phenotype import sample_phenotype
    >>> ph = sample_phenotype(np.random.default_rng(1), {"sex": "M", "age_years": 50, "height_cm": 170,
    ...     "weight_kg": 70, "bmi": 24.2, "bsa_m2": 1.82}, {"lvm_true_g": 120.0, "lvmi_true_g_m2": 66.0})
    >>> sim = simulate_recording(np.random.default_rng(2), ph, RecordingModel())
    >>> sim.signal_mv.shape
    (12, 5000)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from elvmass.record import LEAD_INDEX, DeviceMeasurements, derive_limb_leads
from elvmass.synth.dipole import LEAD_MATRIX, frontal_axis_deg, render_dipole
from elvmass.synth.phenotype import Phenotype, beat_waves, qrs_duration_ms


@dataclass(frozen=True)
class RecordingModel:
    """Recording conditions of one ECG department (cart, room, staff)."""

    fs_hz: float = 500.0
    duration_s: float = 10.0
    mains_hz: float = 60.0  # Taiwan's grid; the external profile uses 50 Hz
    p_af_episode: float = 0.6  # chance an AF-prone patient is in AF at a given recording
    p_pvc: float = 0.04
    p_pac: float = 0.02
    p_arm_reversal: float = 0.004
    p_lead_off: float = 0.004
    p_powerline: float = 0.08
    p_tremor: float = 0.03  # with the other flags, about the 8 % of flagged real records (PTB-XL / LUDB fit part)
    noise_scale: float = 1.0
    device_qrs_sd_ms: float = 5.0
    device_qrs_bias_ms: float = 0.0
    device_axis_sd_deg: float = 6.0
    device_interval_sd_ms: float = 8.0
    # GE 12SL's QT ends later than elvmass's tangent-method T end the generator's intervals are fitted to:
    # Chapman-Shaoxing's GE MUSE QT median (403 ms, sinus) vs the fit part's pipeline QT (about 378 ms)
    device_qt_bias_ms: float = 25.0
    placement_rotation_sd_deg: float = 5.0
    placement_gain_sd: float = 0.06
    residual_noise_factor: float = 0.8  # of the real template record's in-band residual (the rest is respiratory gain)


@dataclass
class Recording:
    """A simulated recording before it becomes an ECGRecord (plus its truth for truth.csv)."""

    signal_mv: np.ndarray
    fs_hz: float
    measurements: DeviceMeasurements
    statements: tuple[str, ...]
    truth: dict = field(default_factory=dict)


def _rotation(rng: np.random.Generator, sd_deg: float) -> np.ndarray:
    ax, ay, az = np.deg2rad(rng.normal(0.0, sd_deg, 3))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@lru_cache(maxsize=4)
def _muscle_filter(fs_hz: float):
    from scipy.signal import butter

    return butter(2, [20.0, min(150.0, 0.45 * fs_hz)], btype="bandpass", fs=fs_hz)


@lru_cache(maxsize=8)
def _band_filter(fs_hz: float, lo: float, hi: float):
    from scipy.signal import butter

    return butter(4, [lo, hi], btype="bandpass", fs=fs_hz)


def _beat_schedule(rng, ph: Phenotype, rr_ms: float, duration_s: float, af: bool, model: RecordingModel):
    """Beat times (s) and kinds, starting one beat before the window so every beat is whole."""
    times, kinds = [], []
    t = -rr_ms / 1000.0 * rng.uniform(0.2, 1.0)
    ectopic = None
    if not af and rng.random() < model.p_pvc:
        ectopic = "pvc"
    elif not af and rng.random() < model.p_pac:
        ectopic = "pac"
    n_expected = int(duration_s * 1000.0 / rr_ms) + 3
    ectopic_at = int(rng.integers(3, max(4, n_expected - 2))) if ectopic else -1
    phase = rng.uniform(0, 2 * math.pi)
    i = 0
    while t < duration_s + 0.6:
        times.append(t)
        if i == ectopic_at:
            kinds.append(ectopic)
        else:
            kinds.append("af" if af else "sinus")
        if af:
            rr = rr_ms * rng.gamma(25.0, 1.0 / 25.0)
        else:
            rr = rr_ms * (1.0 + 0.04 * math.sin(2 * math.pi * 0.25 * t + phase) + rng.normal(0.0, 0.015))
        if i + 1 == ectopic_at:
            rr *= 0.62 if ectopic == "pvc" else 0.72
        if i == ectopic_at and ectopic == "pvc":
            rr = 2.0 * rr_ms - 0.62 * rr_ms  # compensatory pause
        t += max(rr, 280.0) / 1000.0
        i += 1
    return np.asarray(times), kinds


@lru_cache(maxsize=8)
def _patient_base(ph: Phenotype) -> np.ndarray:
    from elvmass.synth.templates import patient_beat

    return patient_beat(ph.template, qrs_scale=ph.qrs_scale, axis_shift_deg=ph.axis_shift_deg,
                        posterior_shift_deg=ph.posterior_shift_deg, strain_degree=ph.strain_degree if ph.strain else 0.0)


def _real_beat(ph: Phenotype, rr_ms: float, fs_hz: float, rotation, gain, *, drop_p: bool = False):
    """The patient's real-template beat (8, n: I, II, V1..V6) at this RR, its R index and fiducials (ms)."""
    from elvmass.synth.templates import place_rotation, warp_beat

    qt = ph.qtc_ms * (rr_ms / 1000.0) ** (1.0 / 3.0)
    beat, r_idx, fid = warp_beat(_patient_base(ph), ph.template, fs_hz, pr_ms=ph.pr_ms, qrs_ms=ph.qrs_ms, qt_ms=qt, drop_p=drop_p)
    return place_rotation(beat, rotation, gain), r_idx, fid, qt


def _uses_template(ph: Phenotype) -> bool:
    return ph.template >= 0 and ph.conduction == "normal"


def _template(ph: Phenotype, rr_ms: float, rotation, gain, fs_hz: float):
    """Noise-free single beat leads (12, n) and its fiducials (ms from window start)."""
    win_s, r_at_s = 1.6, 0.6
    if _uses_template(ph):
        eight, _, fid, qt_ms = _real_beat(ph, rr_ms, fs_hz, rotation, gain)
        limb = derive_limb_leads(eight[0], eight[1])
        leads = np.vstack([eight[0], eight[1], limb["III"], limb["aVR"], limb["aVL"], limb["aVF"], eight[2:]])
        return leads, {**fid, "p_off": fid["p_on"] + ph.p_ms}, qt_ms
    waves = beat_waves(ph, rr_ms, kind="sinus", rotation=rotation, gain=gain)
    n = int(win_s * fs_hz)
    leads = LEAD_MATRIX @ render_dipole(np.array([r_at_s]), [waves], n, fs_hz).T
    qrs_d = qrs_duration_ms(ph)
    on_ms = r_at_s * 1000.0 - 0.45 * qrs_d
    qt_ms = ph.qtc_ms * (rr_ms / 1000.0) ** (1.0 / 3.0) + max(0.0, qrs_d - ph.qrs_ms)
    fid = {
        "p_on": on_ms - ph.pr_ms,
        "p_off": on_ms - ph.pr_ms + ph.p_ms,
        "qrs_on": on_ms,
        "qrs_off": on_ms + qrs_d,
        "t_off": on_ms + qt_ms,
    }
    return leads, fid, qt_ms


def _window(leads, fs_hz, a_ms, b_ms):
    a, b = int(round(a_ms * fs_hz / 1000.0)), int(round(b_ms * fs_hz / 1000.0))
    return leads[:, max(a, 0) : max(b, a + 1)]


def device_voltage_flags(qrs_leads: np.ndarray, sex: str) -> dict:
    """The cart's own LVH voltage screen on its template QRS (12, m): Sokolow-Lyon and Cornell.

    This models the *device's* interpretation program (its statements), not elvmass's
    signal pipeline, which measures criteria from the written files (``elvmass.signal``).
    """
    L = LEAD_INDEX
    sv1 = max(0.0, -float(qrs_leads[L["V1"]].min()))
    rv56 = max(float(qrs_leads[L["V5"]].max()), float(qrs_leads[L["V6"]].max()), 0.0)
    ravl = max(0.0, float(qrs_leads[L["aVL"]].max()))
    sv3 = max(0.0, -float(qrs_leads[L["V3"]].min()))
    cornell = ravl + sv3
    return {
        "device_sokolow_mv": sv1 + rv56,
        "device_cornell_mv": cornell,
        "device_lvh_voltage": bool(sv1 + rv56 > 3.5 or cornell > (2.8 if sex == "M" else 2.0)),
    }


def simulate_recording(rng: np.random.Generator, ph: Phenotype, model: RecordingModel) -> Recording:
    """Simulate one 10 s, 12-lead recording of the patient with phenotype ``ph``."""
    fs = model.fs_hz
    n = int(round(model.duration_s * fs))
    af = ph.af_prone and ph.conduction != "paced" and rng.random() < model.p_af_episode
    hr = float(np.clip(ph.hr_bpm + rng.normal(0.0, 6.0) + (12.0 if af else 0.0), 42.0, 130.0))
    rr_ms = 60000.0 / hr
    rotation = _rotation(rng, model.placement_rotation_sd_deg)
    gain = float(math.exp(rng.normal(0.0, model.placement_gain_sd)))

    times, kinds = _beat_schedule(rng, ph, rr_ms, model.duration_s, af, model)
    rrs = np.diff(np.concatenate([[times[0] - rr_ms / 1000.0], times])) * 1000.0
    resp = 1.0 + 0.04 * np.sin(2 * math.pi * 0.25 * times + rng.uniform(0, 2 * math.pi))
    eight = np.empty((8, n))  # I, II, V1..V6
    if _uses_template(ph):
        # real-template beats, each scaled by its respiratory gain; ectopic ventricular beats from the dipole model
        pvc = [i for i, k in enumerate(kinds) if k == "pvc"]
        vcg = render_dipole(times[pvc], [beat_waves(ph, float(rrs[i]), kind="pvc", rotation=rotation, gain=gain) for i in pvc], n, fs)
        eight[0] = LEAD_MATRIX[0] @ vcg.T
        eight[1] = LEAD_MATRIX[1] @ vcg.T
        eight[2:] = LEAD_MATRIX[6:] @ vcg.T
        mean_rr_ms = float(np.mean(np.diff(times))) * 1000.0
        beat, r_idx, _, _ = _real_beat(ph, mean_rr_ms, fs, rotation, gain, drop_p=af)
        from elvmass.synth.templates import crossfade_weights

        wn = beat.shape[1]
        gaps = np.diff(times) * 1000.0
        for i, (tb, k, g) in enumerate(zip(times, kinds, resp)):
            if k == "pvc":
                continue
            a = int(round(tb * fs)) - r_idx
            lo, hi = max(a, 0), min(a + wn, n)
            if hi > lo:
                rr_prev = gaps[i - 1] if i > 0 else rr_ms
                rr_next = gaps[i] if i < len(gaps) else rr_ms
                w = crossfade_weights(wn, r_idx, fs, rr_prev, rr_next)
                eight[:, lo:hi] += float(g) * (beat * w[None, :])[:, lo - a : hi - a]
    else:
        waves = [beat_waves(ph, float(rr), kind=k, rotation=rotation, gain=gain * float(g)) for rr, k, g in zip(rrs, kinds, resp)]
        vcg = render_dipole(times, waves, n, fs)
        eight[0] = LEAD_MATRIX[0] @ vcg.T
        eight[1] = LEAD_MATRIX[1] @ vcg.T
        eight[2:] = LEAD_MATRIX[6:] @ vcg.T

    t = np.arange(n) / fs
    if af:
        f_dir = np.array([-0.3, 0.2, -0.9])
        f_wave = np.zeros(n)
        for _ in range(3):
            f_wave += rng.uniform(0.015, 0.04) * np.sin(2 * math.pi * rng.uniform(4.0, 8.0) * t + rng.uniform(0, 6.3))
        f_leads = np.vstack([LEAD_MATRIX[0], LEAD_MATRIX[1], LEAD_MATRIX[6:]]) @ f_dir
        eight += f_leads[:, None] * f_wave[None, :]

    # ---- noise on the 8 independent leads
    s = model.noise_scale
    wander_amp = rng.uniform(0.0, 0.12) * s
    resp_phase = rng.uniform(0, 2 * math.pi)
    resp_f = rng.uniform(0.15, 0.35)
    common = wander_amp * np.sin(2 * math.pi * resp_f * t + resp_phase)
    noise = np.empty((8, n))
    low_f = rng.uniform(0.05, 0.5, size=8)
    low_amp = rng.uniform(0.0, 0.08, size=8) * s
    low_phase = rng.uniform(0, 2 * math.pi, size=8)
    noise[:] = common[None, :] * rng.uniform(0.5, 1.5, size=(8, 1))
    noise += low_amp[:, None] * np.sin(2 * math.pi * low_f[:, None] * t[None, :] + low_phase[:, None])
    from scipy.signal import lfilter

    b, a = _muscle_filter(fs)
    tremor = rng.random() < model.p_tremor
    emg_sd = (rng.uniform(0.012, 0.04) if tremor else rng.uniform(0.0015, 0.006)) * s
    emg = lfilter(b, a, rng.normal(0.0, 1.0, size=(8, n)), axis=1)
    emg *= emg_sd / (emg.std() + 1e-12)
    emg[:2] *= 1.3  # limb electrodes pick up more skeletal muscle
    noise += emg + rng.normal(0.0, 0.0015 * s, size=(8, n))
    if _uses_template(ph):
        # what real records keep in the 0.5-40 Hz band after their median beat is removed (beat-to-beat
        # variation, electrode and muscle noise): the template's own record's level, mostly low-frequency
        from elvmass.synth.templates import beat_library

        level = float(beat_library().resid_mv[ph.template]) * math.exp(rng.normal(0.0, 0.3)) * s * model.residual_noise_factor
        bl, al = _band_filter(fs, 0.5, 4.0)
        bh, ah = _band_filter(fs, 4.0, 30.0)  # kept below the pipeline's 40 Hz cut: real records pass its HF-noise check
        low = lfilter(bl, al, rng.normal(0.0, 1.0, size=(8, n)), axis=1)
        high = lfilter(bh, ah, rng.normal(0.0, 1.0, size=(8, n)), axis=1)
        band = 0.8 * low / (low.std() + 1e-12) + 0.6 * high / (high.std() + 1e-12)
        noise += level * band * rng.uniform(0.6, 1.4, size=(8, 1))
    powerline = rng.random() < model.p_powerline
    if powerline:
        pl_amp = rng.uniform(0.005, 0.04) * s
        noise += pl_amp * rng.uniform(0.3, 1.0, size=(8, 1)) * np.sin(
            2 * math.pi * model.mains_hz * t[None, :] + rng.uniform(0, 2 * math.pi, size=(8, 1))
        )
    eight += noise

    arm_reversal = rng.random() < model.p_arm_reversal
    if arm_reversal:
        lead_i, lead_ii = -eight[0], eight[1] - eight[0]
        eight[0], eight[1] = lead_i, lead_ii
    lead_off = None
    if rng.random() < model.p_lead_off:
        k = int(rng.integers(2, 8))
        eight[k] = rng.normal(0.0, 0.002, size=n)
        lead_off = f"V{k - 1}"

    limb = derive_limb_leads(eight[0], eight[1])
    signal = np.vstack([eight[0], eight[1], limb["III"], limb["aVR"], limb["aVL"], limb["aVF"], eight[2:]])

    # ---- the cart's measurements on its (noise-free) template
    mean_rr = float(np.mean(np.diff(times)))
    tmpl, fid, qt_ms = _template(ph, mean_rr * 1000.0, rotation, gain, fs)
    if arm_reversal:
        li, lii = -tmpl[0], tmpl[1] - tmpl[0]
        d = derive_limb_leads(li, lii)
        tmpl = np.vstack([li, lii, d["III"], d["aVR"], d["aVL"], d["aVF"], tmpl[6:]])
    L = LEAD_INDEX

    def axis(a_ms, b_ms):
        w = _window(tmpl, fs, a_ms, b_ms)
        return frontal_axis_deg(w[L["I"]], w[L["aVF"]])

    true_qrs = qrs_duration_ms(ph)
    r_axis_true = axis(fid["qrs_on"], fid["qrs_off"])
    t_axis_true = axis(fid["qrs_off"], fid["t_off"])
    p_axis_true = None if af else axis(fid["p_on"], fid["p_off"])
    wrap = lambda x: float(((x + 180.0) % 360.0) - 180.0)  # noqa: E731
    dev_hr = 60.0 / mean_rr
    dev_qt = qt_ms + (model.device_qt_bias_ms if _uses_template(ph) else 0.0) + rng.normal(0.0, model.device_interval_sd_ms)
    meas = DeviceMeasurements(
        hr_bpm=round(dev_hr),
        pr_ms=None if af else round(ph.pr_ms + rng.normal(0.0, model.device_interval_sd_ms * 0.75)),
        qrs_ms=round(true_qrs + model.device_qrs_bias_ms + rng.normal(0.0, model.device_qrs_sd_ms)),
        qt_ms=round(dev_qt),
        qtc_ms=round(dev_qt / math.sqrt(mean_rr)),  # Bazett, as GE reports QTc
        p_axis_deg=None if p_axis_true is None else round(wrap(p_axis_true + rng.normal(0.0, model.device_axis_sd_deg))),
        r_axis_deg=round(wrap(r_axis_true + rng.normal(0.0, model.device_axis_sd_deg))),
        t_axis_deg=round(wrap(t_axis_true + rng.normal(0.0, model.device_axis_sd_deg))),
    )
    volt = device_voltage_flags(_window(tmpl, fs, fid["qrs_on"], fid["qrs_off"]), ph.sex)

    statements = _statements(ph, meas, af, kinds, volt)
    truth = {
        "rhythm": "AF" if af else "sinus",
        "hr_true_bpm": round(hr, 2),
        "n_beats_in_window": int(np.sum((times >= 0) & (times < model.duration_s))),
        "ectopic": next((k for k in kinds if k in ("pvc", "pac")), ""),
        "arm_reversal": arm_reversal,
        "lead_off": lead_off or "",
        "powerline": powerline,
        "tremor": tremor,
        "emg_sd_mv": round(emg_sd, 5),
        "wander_mv": round(wander_amp, 5),
        "placement_gain": round(gain, 5),
        "qrs_true_ms": round(true_qrs, 2),
        "qt_true_ms": round(qt_ms, 2),
        "r_axis_true_deg": round(r_axis_true, 2),
        "t_axis_true_deg": round(t_axis_true, 2),
        "p_axis_true_deg": None if p_axis_true is None else round(p_axis_true, 2),
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in volt.items()},
    }
    return Recording(signal.astype(np.float32), fs, meas, statements, truth)


def _statements(ph: Phenotype, meas: DeviceMeasurements, af: bool, kinds: list[str], volt: dict) -> tuple[str, ...]:
    out: list[str] = []
    abnormal = False
    if ph.conduction == "paced":
        out.append("Electronic ventricular pacemaker")
        abnormal = True
    elif af:
        out.append("Atrial fibrillation")
        abnormal = True
    elif meas.hr_bpm < 60:
        out.append("Sinus bradycardia")
    elif meas.hr_bpm > 100:
        out.append("Sinus tachycardia")
    else:
        out.append("Normal sinus rhythm")
    if "pvc" in kinds:
        out.append("with Premature ventricular complexes")
        abnormal = True
    elif "pac" in kinds:
        out.append("with Premature atrial complexes")
    if ph.conduction == "LBBB":
        out.append("Left bundle branch block")
        abnormal = True
    elif ph.conduction == "RBBB":
        out.append("Right bundle branch block")
        abnormal = True
    if ph.conduction != "paced":
        if meas.r_axis_deg is not None and meas.r_axis_deg < -30:
            out.append("Left axis deviation")
            abnormal = True
        elif meas.r_axis_deg is not None and meas.r_axis_deg > 90:
            out.append("Right axis deviation")
            abnormal = True
    if ph.conduction in ("normal",):
        if volt["device_lvh_voltage"] and ph.strain:
            out.append("Left ventricular hypertrophy with repolarization abnormality")
            abnormal = True
        elif volt["device_lvh_voltage"]:
            out.append("Minimal voltage criteria for LVH, may be normal variant")
        elif ph.strain:
            out.append("Nonspecific ST and T wave abnormality")
            abnormal = True
    if not abnormal and len(out) == 1 and out[0] == "Normal sinus rhythm":
        out.append("Normal ECG")
    else:
        out.append("Abnormal ECG" if abnormal else "Borderline ECG")
    return tuple(out)


__all__ = ["Recording", "RecordingModel", "device_voltage_flags", "simulate_recording"]
