"""The ECG forward model: a time-varying 3-D cardiac dipole projected onto the 12 leads.

Each beat is a sum of Gaussian waves in three dimensions, in the manner of ECGSYN
(McSharry et al., IEEE TBME 50:289, 2003) extended to a 3-D dipole by Sameni et al.
(EURASIP J Adv Signal Process 2007:43407): wave *k* contributes
``v_k * exp(-(t - c_k)^2 / (2 w_k^2))`` to the dipole, with ``v_k`` a vector in Frank
coordinates (X to the patient's left, Y to the feet, Z to the back; millivolts).
P (two waves: right then left atrium), QRS (septal, main, terminal), ST and T (two waves,
giving T its asymmetry) are each one wave; rhythm-specific morphologies (bundle branch
block, paced, ectopic) are other wave lists.

The dipole is projected onto I, II, V1-V6 with the Dower VCG-to-12-lead matrix
(Dower et al., J Electrocardiol 13:189, 1980), which is, to three decimals, the
pseudo-inverse of the inverse Dower matrix of Edenbrandt & Pahlm (J Electrocardiol 21:361,
1988; :data:`INVERSE_DOWER`). III, aVR, aVL, aVF follow from I and II by Einthoven and
Goldberger, so those relations hold exactly.

    >>> import numpy as np
    >>> waves = np.array([[0.0, 10.0, 1.0, 0.5, 0.2]])   # centre ms, width ms, X, Y, Z (mV)
    >>> vcg = render_dipole(np.array([0.5]), [waves], n_samples=500, fs_hz=500.0)
    >>> leads = dipole_to_leads(vcg)
    >>> leads.shape, round(float(leads[0].max()), 3)  # lead I peak = 0.632*1 - 0.235*0.5 + 0.059*0.2
    ((12, 500), 0.526)
"""

from __future__ import annotations

import numpy as np

#: Inverse Dower matrix (Edenbrandt & Pahlm 1988): rows X, Y, Z; columns V1..V6, I, II.
INVERSE_DOWER = np.array(
    [
        [-0.172, -0.074, 0.122, 0.231, 0.239, 0.194, 0.156, -0.010],
        [0.057, -0.019, -0.106, -0.022, 0.041, 0.048, -0.227, 0.887],
        [-0.229, -0.310, -0.246, -0.063, 0.055, 0.108, 0.022, 0.102],
    ]
)
#: Dower VCG-to-ECG matrix (Dower et al. 1980): rows V1..V6, I, II; columns X, Y, Z.
DOWER = np.array(
    [
        [-0.515, 0.157, -0.917],
        [0.044, 0.164, -1.387],
        [0.882, 0.098, -1.277],
        [1.213, 0.127, -0.601],
        [1.125, 0.127, -0.086],
        [0.831, 0.076, 0.230],
        [0.632, -0.235, 0.059],
        [0.235, 1.066, -0.132],
    ]
)

# 12 x 3 matrix in elvmass lead order: I, II, III, aVR, aVL, aVF, V1..V6.
_I, _II = DOWER[6], DOWER[7]
LEAD_MATRIX = np.vstack(
    [_I, _II, _II - _I, -(_I + _II) / 2.0, _I - _II / 2.0, _II - _I / 2.0, DOWER[:6]]
)

#: Columns of a wave table: centre (ms from the beat's fiducial), width (SD, ms), X, Y, Z (mV).
WAVE_COLUMNS = ("centre_ms", "width_ms", "x_mv", "y_mv", "z_mv")


def unit_vector(frontal_deg: float, elevation_deg: float) -> np.ndarray:
    """A unit dipole direction from the frontal-plane angle (ECG axis convention: 0 deg = left,
    +90 deg = inferior) and the elevation toward the back (+) or front (-)."""
    a, e = np.deg2rad(frontal_deg), np.deg2rad(elevation_deg)
    return np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])


def render_dipole(beat_times_s: np.ndarray, beat_waves: list[np.ndarray], n_samples: int, fs_hz: float) -> np.ndarray:
    """The dipole (n_samples, 3) in mV for beats whose fiducial points lie at ``beat_times_s``.

    ``beat_waves[i]`` is the (k, 5) wave table of beat *i* (see :data:`WAVE_COLUMNS`). Each wave
    is evaluated only within +-4 widths of its centre and summed in with one ``bincount`` per
    axis, so a 10 s ECG costs a few thousand exponentials, not one per sample and wave.
    """
    if len(beat_times_s) != len(beat_waves):
        raise ValueError("one wave table per beat is needed")
    out = np.zeros((n_samples, 3))
    if len(beat_waves) == 0:
        return out
    table = np.concatenate([w for w in beat_waves])
    owner = np.repeat(np.arange(len(beat_waves)), [len(w) for w in beat_waves])
    centre_s = np.asarray(beat_times_s)[owner] + table[:, 0] / 1000.0
    width_s = table[:, 1] / 1000.0
    half = np.ceil(4.0 * width_s * fs_hz).astype(int) + 1
    span = int(half.max()) * 2 + 1
    start = np.rint(centre_s * fs_hz).astype(int) - half.max()
    idx = start[:, None] + np.arange(span)[None, :]  # (waves, span) sample indices
    t = idx / fs_hz
    g = np.exp(-0.5 * ((t - centre_s[:, None]) / width_s[:, None]) ** 2)
    g[np.abs(t - centre_s[:, None]) > 4.0 * width_s[:, None]] = 0.0
    ok = (idx >= 0) & (idx < n_samples)
    flat_idx = idx[ok]
    for axis in range(3):
        weights = (g * table[:, 2 + axis][:, None])[ok]
        out[:, axis] = np.bincount(flat_idx, weights=weights, minlength=n_samples)[:n_samples]
    return out


def dipole_to_leads(vcg: np.ndarray) -> np.ndarray:
    """Project a dipole (n, 3) onto the 12 leads: (12, n) mV in elvmass lead order."""
    vcg = np.asarray(vcg, dtype=np.float64)
    if vcg.ndim != 2 or vcg.shape[1] != 3:
        raise ValueError(f"dipole must have shape (n, 3), got {vcg.shape}")
    return LEAD_MATRIX @ vcg.T


def leads_to_dipole(leads: np.ndarray) -> np.ndarray:
    """Estimate the dipole (n, 3) from 12 leads with the inverse Dower matrix (Edenbrandt & Pahlm 1988)."""
    leads = np.asarray(leads, dtype=np.float64)
    eight = np.vstack([leads[6:12], leads[0], leads[1]])
    return (INVERSE_DOWER @ eight).T


def frontal_axis_deg(lead_i: np.ndarray, lead_avf: np.ndarray) -> float:
    """Frontal-plane axis (degrees, -180..180] from the net areas of I and aVF, as ECG carts report it."""
    return float(np.degrees(np.arctan2(np.sum(lead_avf), np.sum(lead_i))))


__all__ = [
    "DOWER",
    "INVERSE_DOWER",
    "LEAD_MATRIX",
    "WAVE_COLUMNS",
    "dipole_to_leads",
    "frontal_axis_deg",
    "leads_to_dipole",
    "render_dipole",
    "unit_vector",
]
