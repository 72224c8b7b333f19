"""Real-beat morphology: a library of median beats fitted to real ECGs, warped and modified for LV mass.

The generator's sinus beats are not drawn from hand-set Gaussian waves any more but from a
library of 165 real median beats (8 independent leads, 250 Hz, built by
:mod:`elvmass.synth.fit` from the fit part of PTB-XL and LUDB; ``src/elvmass/data/synth/
beat_library.npz``, attribution in ``src/elvmass/data/ATTRIBUTION.md``). A synthetic patient gets
the template of a real person of the same sex and about the same age (Gaussian kernel, SD 10
years), so P, QRS and T morphology and the frontal axes follow the real distributions by sex and
age. On top of it the LV-mass effects of :mod:`elvmass.synth.phenotype` are imposed:

=====================  ===========================================================================
effect                 how it is applied to the template
=====================  ===========================================================================
voltage                QRS window scaled by ``qrs_mv / template QRS magnitude`` (ST-T by its
                       0.4th power), so QRS voltage follows LV mass, body habitus and a person factor
QRS duration           the QRS segment is time-warped to the target duration (template + 5 ms/100 g)
axis shift             the QRS dipole (inverse Dower, Edenbrandt & Pahlm 1988) is turned leftward
                       in the frontal plane and posterior, by the mass excess; re-projected with Dower
strain ST-T            a dipole opposite the main QRS vector, shaped like the template's T wave and
                       an ST depression, is added over ST-T (T inverts where R is tallest)
intervals              piecewise-linear time warp of PR, QRS and QT (QT from QTc at the beat's RR)
placement              a small per-recording dipole rotation and gain (electrode position)
=====================  ===========================================================================

    >>> import numpy as np
    >>> lib = beat_library()
    >>> lib.beats_mv.shape[1:], lib.fs_hz
    ((8, 225), 250.0)
    >>> t = choose_template(np.random.default_rng(0), "F", 55.0)
    >>> bool(lib.female[t])
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from elvmass.synth.dipole import DOWER, INVERSE_DOWER

LIBRARY_PATH = Path(__file__).resolve().parents[1] / "data" / "synth" / "beat_library.npz"

# 8-lead order of the library: I, II, V1..V6. Dower rows in that order, and inverse Dower columns.
_D8 = np.vstack([DOWER[6], DOWER[7], DOWER[:6]])  # (8, 3)
_INV8 = np.hstack([INVERSE_DOWER[:, 6:8], INVERSE_DOWER[:, :6]])  # (3, 8)


@dataclass(frozen=True)
class BeatLibrary:
    beats_mv: np.ndarray  # (n, 8, L) at fs_hz, R at before_s
    fid_ms: np.ndarray  # (n, 5): p_on, qrs_on, R, qrs_off, t_off (ms from window start)
    hr_bpm: np.ndarray
    female: np.ndarray
    age_years: np.ndarray
    resid_mv: np.ndarray
    wander_mv: np.ndarray
    qrs_mag_mv: np.ndarray  # maximal spatial QRS magnitude (inverse Dower VCG)
    source: np.ndarray
    sokolow_mv: np.ndarray  # Sokolow-Lyon and Cornell voltage of the source record, by elvmass.signal
    cornell_mv: np.ndarray
    fs_hz: float
    before_s: float


@lru_cache(maxsize=1)
def beat_library(path: str | None = None) -> BeatLibrary:
    """The fitted beat library (loaded once)."""
    z = np.load(Path(path) if path else LIBRARY_PATH, allow_pickle=False)
    beats = z["beats_uv"].astype(np.float64) / 1000.0
    fid = z["fid_ms"].astype(np.float64)
    fs = float(z["fs_hz"])
    mags = []
    for b, f in zip(beats, fid):
        a, c = int(f[1] * fs / 1000.0), int(math.ceil(f[3] * fs / 1000.0))
        v = _INV8 @ b[:, a : c + 1]
        mags.append(float(np.sqrt((v**2).sum(axis=0)).max()))
    return BeatLibrary(
        beats_mv=beats, fid_ms=fid, hr_bpm=z["hr_bpm"].astype(np.float64), female=z["female"].astype(bool),
        age_years=z["age_years"].astype(np.float64), resid_mv=z["resid_mv"].astype(np.float64),
        wander_mv=z["wander_mv"].astype(np.float64), qrs_mag_mv=np.asarray(mags), source=z["source"],
        sokolow_mv=z["sokolow_mv"].astype(np.float64), cornell_mv=z["cornell_mv"].astype(np.float64),
        fs_hz=fs, before_s=float(z["before_s"]),
    )


def choose_template(rng: np.random.Generator, sex: str, age_years: float, age_sd: float = 10.0) -> int:
    """Index of a template of a real person of ``sex``, weighted by a Gaussian kernel on age."""
    lib = beat_library()
    pool = np.flatnonzero(lib.female == (sex == "F"))
    w = np.exp(-0.5 * ((lib.age_years[pool] - age_years) / age_sd) ** 2) + 1e-6
    return int(pool[rng.choice(len(pool), p=w / w.sum())])


def _smooth_step(t: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 before a, 1 after b, raised-cosine in between."""
    x = np.clip((t - a) / max(b - a, 1e-9), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def _rot(frontal_deg: float, posterior_deg: float) -> np.ndarray:
    """Rotation of the dipole: ``frontal_deg`` about Z (X toward Y, i.e. clockwise/inferior in the
    frontal plane), then ``posterior_deg`` about Y' turning X toward Z (back)."""
    a, e = math.radians(frontal_deg), math.radians(posterior_deg)
    rz = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[math.cos(e), 0.0, -math.sin(e)], [0.0, 1.0, 0.0], [math.sin(e), 0.0, math.cos(e)]])
    return ry @ rz


def patient_beat(index: int, *, qrs_scale: float, axis_shift_deg: float, posterior_shift_deg: float, strain_degree: float) -> np.ndarray:
    """The template ``index`` with the patient's voltage, axis and strain effects, at library timing (8, L)."""
    lib = beat_library()
    x = lib.beats_mv[index].copy()
    p_on, q_on, r, q_off, t_off = lib.fid_ms[index]
    t = np.arange(x.shape[1]) * 1000.0 / lib.fs_hz
    in_qrs = _smooth_step(t, q_on - 12.0, q_on) * (1.0 - _smooth_step(t, q_off, q_off + 12.0))
    in_stt = _smooth_step(t, q_off, q_off + 12.0) * (1.0 - _smooth_step(t, t_off, t_off + 40.0))
    v = _INV8 @ x  # (3, L)
    if axis_shift_deg or posterior_shift_deg:
        dv = (_rot(axis_shift_deg, posterior_shift_deg) - np.eye(3)) @ v
        x = x + (_D8 @ dv) * in_qrs[None, :]
    if strain_degree > 0:
        mag = np.sqrt((v**2).sum(axis=0))
        k = int(np.argmax(mag * in_qrs))
        u = v[:, k] / (mag[k] + 1e-12)
        t_mag = mag * in_stt
        st = 0.07 * (1.0 - _smooth_step(t, q_off + 60.0, t_off)) * in_stt  # ST depression, mV
        shape = 1.6 * t_mag + st
        x = x - strain_degree * (_D8 @ u)[:, None] * shape[None, :]
    gain = 1.0 + (qrs_scale - 1.0) * in_qrs + (qrs_scale**0.4 - 1.0) * in_stt
    return x * gain[None, :]


def warp_beat(beat: np.ndarray, index: int, fs_hz: float, *, pr_ms: float, qrs_ms: float, qt_ms: float,
              before_ms: float = 600.0, after_ms: float = 1000.0, drop_p: bool = False):
    """Time-warp a library-timed beat (8, L) to the target PR, QRS and QT (QRS onset to T offset), at ``fs_hz``.

    Returns ``(leads (8, n), r_index, fiducials_ms)``: ``n = (before_ms + after_ms) * fs_hz``, the R peak
    at ``before_ms``; fiducials (p_on, qrs_on, qrs_off, t_off) in ms from the window start. Beyond the
    library window the beat tapers to zero over 30 ms, so beats can be cross-faded along a
    recording (:func:`crossfade_weights`); with ``drop_p`` the P wave is removed (atrial fibrillation).
    """
    lib = beat_library()
    p_on, q_on, r, q_off, t_off = lib.fid_ms[index]
    src_t = np.arange(beat.shape[1]) * 1000.0 / lib.fs_hz
    q_frac = (r - q_on) / max(q_off - q_on, 1.0)
    T_qon = before_ms - q_frac * qrs_ms
    tgt = np.array([T_qon - pr_ms - 100.0, T_qon - pr_ms, T_qon, before_ms, T_qon + qrs_ms, T_qon + qt_ms, T_qon + qt_ms + 150.0])
    src = np.array([p_on - 100.0, p_on, q_on, r, q_off, t_off, t_off + 150.0])
    n = int(round((before_ms + after_ms) * fs_hz / 1000.0))
    out_t = np.arange(n) * 1000.0 / fs_hz
    s_of_t = np.interp(out_t, tgt, src, left=np.nan, right=np.nan)
    # beyond the anchors: keep the library's own time scale
    left, right = out_t < tgt[0], out_t > tgt[-1]
    s_of_t[left] = src[0] - (tgt[0] - out_t[left])
    s_of_t[right] = src[-1] + (out_t[right] - tgt[-1])
    # the template keeps its own content (TP segment, U wave, the neighbours' tails as recorded) up to its
    # window's edges; the recording cross-fades consecutive beats in the TP segment (see crossfade_weights)
    edge = _smooth_step(s_of_t, src_t[0], src_t[0] + 30.0) * (1.0 - _smooth_step(s_of_t, src_t[-1] - 30.0, src_t[-1]))
    taper = edge
    if drop_p:
        taper = taper * _smooth_step(s_of_t, q_on - 70.0, q_on - 40.0)
    taper[(s_of_t < src_t[0]) | (s_of_t > src_t[-1])] = 0.0
    out = np.stack([np.interp(s_of_t, src_t, lead, left=0.0, right=0.0) for lead in beat]) * taper[None, :]
    fid = {"p_on": T_qon - pr_ms, "qrs_on": T_qon, "qrs_off": T_qon + qrs_ms, "t_off": T_qon + qt_ms}
    return out, int(round(before_ms * fs_hz / 1000.0)), fid


def crossfade_weights(n: int, r_index: int, fs_hz: float, rr_prev_ms: float, rr_next_ms: float, fade_ms: float = 40.0) -> np.ndarray:
    """Weights (n,) of one beat in a recording: 1 from 40 % of the previous RR before its R peak to 60 % of
    the next RR after it (both in the TP segment), raised-cosine cross-fades of ``fade_ms`` there, so
    consecutive beats' weights sum to one where they overlap."""
    t = (np.arange(n) - r_index) * 1000.0 / fs_hz
    a, b = -0.4 * rr_prev_ms, 0.6 * rr_next_ms
    return _smooth_step(t, a - fade_ms / 2, a + fade_ms / 2) * (1.0 - _smooth_step(t, b - fade_ms / 2, b + fade_ms / 2))


def place_rotation(beat: np.ndarray, rotation: np.ndarray | None, gain: float) -> np.ndarray:
    """Electrode placement: turn the beat's dipole content by ``rotation`` (3x3) and scale by ``gain``."""
    if rotation is not None:
        beat = beat + _D8 @ ((rotation - np.eye(3)) @ (_INV8 @ beat))
    return beat * gain


__all__ = ["BeatLibrary", "LIBRARY_PATH", "beat_library", "choose_template", "crossfade_weights", "patient_beat", "place_rotation", "warp_beat"]
