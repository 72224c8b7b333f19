"""The ECG record: one resting 12-lead ECG with its metadata, the unit every layer passes on.

Readers in :mod:`elvmass.io` produce it; the signal pipeline, cohort builder and models consume it.
It holds plain data only (a float32 array and small dataclasses), so it can be built by hand::

    >>> import numpy as np
    >>> from elvmass.record import ECGRecord
    >>> rec = ECGRecord(signal_mv=np.zeros((12, 5000), np.float32), fs_hz=500.0)
    >>> rec.duration_s
    10.0
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import numpy as np

#: The one standard lead order used everywhere in elvmass.
LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LEAD_INDEX: dict[str, int] = {name: i for i, name in enumerate(LEADS)}

MIN_FS_HZ = 50.0
MAX_FS_HZ = 20_000.0


@dataclass(frozen=True)
class Patient:
    """Demographics as stored in the ECG file (or given by the user). Missing values are None."""

    age_years: float | None = None
    sex: str | None = None  # 'M' or 'F'
    height_cm: float | None = None
    weight_kg: float | None = None
    patient_id: str | None = None

    def __post_init__(self) -> None:
        if self.sex is not None and self.sex not in ("M", "F"):
            raise ValueError(f"sex must be 'M', 'F' or None, got {self.sex!r}")


@dataclass(frozen=True)
class DeviceMeasurements:
    """The ECG machine's own global measurements (None where the file has none)."""

    hr_bpm: float | None = None
    pr_ms: float | None = None
    qrs_ms: float | None = None
    qt_ms: float | None = None
    qtc_ms: float | None = None
    p_axis_deg: float | None = None
    r_axis_deg: float | None = None
    t_axis_deg: float | None = None

    #: Fields where 0 (or less) is a device's placeholder for "not measured", never a measurement (axes may be 0).
    POSITIVE_ONLY = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms")

    def __post_init__(self) -> None:
        for name in self.POSITIVE_ONLY:
            value = getattr(self, name)
            if value is not None and not value > 0:  # 0, negative or NaN: not measured
                object.__setattr__(self, name, None)

    def as_dict(self) -> dict[str, float | None]:
        # the fields are plain numbers: no need for dataclasses.asdict's recursive deep copy (per ECG predicted)
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass
class ECGRecord:
    """A resting 12-lead ECG.

    ``signal_mv`` is float32, shape (12, n_samples), leads in :data:`LEADS` order, millivolts.
    ``flags`` collects quality problems found while reading (e.g. ``"flat_lead:V3"``,
    ``"nan_samples:II"``); a flagged record is still returned so the caller can decide.
    """

    signal_mv: np.ndarray
    fs_hz: float
    patient: Patient = field(default_factory=Patient)
    measurements: DeviceMeasurements = field(default_factory=DeviceMeasurements)
    acquired_at: dt.datetime | None = None
    statements: tuple[str, ...] = ()
    source_path: str | None = None
    source_format: str | None = None
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        sig = np.asarray(self.signal_mv, dtype=np.float32)
        if sig.ndim != 2 or sig.shape[0] != len(LEADS):
            raise ValueError(f"signal_mv must have shape (12, n), got {sig.shape}")
        if not (MIN_FS_HZ <= float(self.fs_hz) <= MAX_FS_HZ):
            raise ValueError(f"fs_hz={self.fs_hz} is outside the plausible range {MIN_FS_HZ:g}-{MAX_FS_HZ:g} Hz")
        self.signal_mv = sig
        self.fs_hz = float(self.fs_hz)
        self.statements = tuple(self.statements)
        self.flags = tuple(self.flags)

    @property
    def missing_leads(self) -> tuple[str, ...]:
        """The leads the file did not hold (all NaN), when it was read with ``partial_leads=True``
        (flag ``missing_leads:I,III,...``); empty for a 12-lead record."""
        for flag in self.flags:
            if flag.startswith("missing_leads:"):
                return tuple(flag.split(":", 1)[1].split(","))
        return ()

    @property
    def n_samples(self) -> int:
        return int(self.signal_mv.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs_hz

    def lead(self, name: str) -> np.ndarray:
        """One lead by its standard name, e.g. ``rec.lead("V5")``."""
        return self.signal_mv[LEAD_INDEX[name]]

    def replace(self, **changes) -> "ECGRecord":
        """A copy with some fields changed (the record itself is never mutated by elvmass)."""
        return dataclasses.replace(self, **changes)

    def resampled(self, fs_hz: float) -> "ECGRecord":
        """The same ECG at another sampling rate (polyphase resampling, anti-aliased)."""
        return self.replace(signal_mv=resample_signal(self.signal_mv, self.fs_hz, fs_hz), fs_hz=float(fs_hz))


def derive_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> dict[str, np.ndarray]:
    """III, aVR, aVL, aVF from I and II (Einthoven and Goldberger), as files storing 8 leads need.

    >>> import numpy as np
    >>> d = derive_limb_leads(np.array([1.0]), np.array([2.0]))
    >>> float(d["III"][0]), float(d["aVR"][0]), float(d["aVL"][0]), float(d["aVF"][0])
    (1.0, -1.5, 0.0, 1.5)
    """
    lead_i = np.asarray(lead_i, dtype=np.float64)
    lead_ii = np.asarray(lead_ii, dtype=np.float64)
    return {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2.0,
        "aVL": lead_i - lead_ii / 2.0,
        "aVF": lead_ii - lead_i / 2.0,
    }


def resample_signal(signal: np.ndarray, fs_from_hz: float, fs_to_hz: float) -> np.ndarray:
    """Resample (leads x samples) from one rate to another with a polyphase filter."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    if fs_to_hz <= 0:
        raise ValueError(f"target rate must be positive, got {fs_to_hz}")
    if abs(fs_from_hz - fs_to_hz) < 1e-9:
        return np.asarray(signal, dtype=np.float32).copy()
    ratio = Fraction(float(fs_to_hz) / float(fs_from_hz)).limit_denominator(1000)
    out = resample_poly(np.asarray(signal, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1)
    return out.astype(np.float32)
