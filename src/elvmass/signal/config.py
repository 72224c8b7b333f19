"""The signal pipeline's configuration: one small frozen dataclass, saved with every model and result.

    >>> from elvmass.signal import SignalConfig
    >>> cfg = SignalConfig(view="median_beat", out_fs_hz=250.0)
    >>> cfg.view_length
    225
    >>> SignalConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

VIEWS = ("single_beat", "full", "random_crop", "median_beat")
GROUPINGS = ("none", "electrical", "anatomical")
P_ONSET_METHODS = ("hybrid", "rules")


@dataclass(frozen=True)
class SignalConfig:
    """How an ECG record becomes the model's input view.

    low_hz, high_hz, notch_hz: zero-phase band-pass (and optional mains notch) applied to every lead.
    view: ``single_beat`` (the beat nearest the middle, the paper's choice), ``full`` (the whole recording,
        cut or zero-padded to ``full_s``), ``random_crop`` (a synchronized crop of random length in
        [crop_min_s, crop_max_s] and random position, zero-padded to ``crop_max_s``: training-time augmentation),
        ``median_beat`` (the sample-wise median of all R-aligned beats).
    beat_before_s, beat_after_s: the beat window around its R peak (default -0.35 s .. +0.55 s: P, QRS and T).
    out_fs_hz: the sampling rate of the view handed to the model.
    lead_grouping: ``none`` (one group of 12), ``electrical`` (limb / precordial, the paper's choice) or
        ``anatomical`` (septal-anterior / lateral / inferior / aVR).
    fiducials_from: ``median_beat`` (fiducials, measurements and criteria on the median of the aligned beats,
        as ECG machines do) or ``single_beat`` (on the chosen beat itself); either way in the chosen beat's window.
    p_onset: ``rules`` (the default: the rules' trapezium onset on the median beat) or ``hybrid`` (that averaged with
        a small network's onset on the chosen beat, :mod:`elvmass.signal.p_onset_net`; ``elvmass beats
        --delineation hybrid``). A bundle or result saved before the key existed reads back as ``rules``.
    seed: seeds the random crop when no generator is given, so the same config gives the same view.
    """

    low_hz: float = 0.5
    high_hz: float = 40.0
    notch_hz: float | None = None
    view: str = "single_beat"
    beat_before_s: float = 0.35
    beat_after_s: float = 0.55
    out_fs_hz: float = 250.0
    crop_min_s: float = 2.0
    crop_max_s: float = 4.0
    full_s: float = 10.0
    lead_grouping: str = "electrical"
    fiducials_from: str = "median_beat"
    p_onset: str = "rules"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {self.view!r}")
        if self.lead_grouping not in GROUPINGS:
            raise ValueError(f"lead_grouping must be one of {GROUPINGS}, got {self.lead_grouping!r}")
        if not (0.0 <= self.low_hz < self.high_hz):
            raise ValueError(f"need 0 <= low_hz < high_hz, got low_hz={self.low_hz}, high_hz={self.high_hz}")
        if self.out_fs_hz < 2.0 * self.high_hz:
            raise ValueError(
                f"out_fs_hz={self.out_fs_hz} would alias the {self.high_hz} Hz band: use out_fs_hz >= {2 * self.high_hz:g} "
                "or lower high_hz"
            )
        if self.notch_hz is not None and self.notch_hz <= 0:
            raise ValueError(f"notch_hz must be positive (50 or 60) or None, got {self.notch_hz}")
        if self.beat_before_s <= 0 or self.beat_after_s <= 0:
            raise ValueError("beat_before_s and beat_after_s must both be positive")
        if not (0 < self.crop_min_s <= self.crop_max_s):
            raise ValueError(f"need 0 < crop_min_s <= crop_max_s, got {self.crop_min_s}, {self.crop_max_s}")
        if self.fiducials_from not in ("median_beat", "single_beat"):
            raise ValueError(f"fiducials_from must be 'median_beat' or 'single_beat', got {self.fiducials_from!r}")
        if self.p_onset not in P_ONSET_METHODS:
            raise ValueError(f"p_onset must be one of {P_ONSET_METHODS}, got {self.p_onset!r}")
        if self.full_s <= 0:
            raise ValueError(f"full_s must be positive, got {self.full_s}")

    @property
    def beat_samples_before(self) -> int:
        """Samples before the R peak in a beat view at ``out_fs_hz``."""
        return int(round(self.beat_before_s * self.out_fs_hz))

    @property
    def beat_samples_after(self) -> int:
        return int(round((self.beat_before_s + self.beat_after_s) * self.out_fs_hz)) - self.beat_samples_before

    @property
    def view_length(self) -> int:
        """L, the number of samples per lead of the view this config produces (fixed for a config)."""
        if self.view in ("single_beat", "median_beat"):
            return self.beat_samples_before + self.beat_samples_after
        if self.view == "full":
            return int(round(self.full_s * self.out_fs_hz))
        return int(round(self.crop_max_s * self.out_fs_hz))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SignalConfig":
        """Build from a dict (e.g. read back from a bundle's JSON); unknown keys are an error. A dict without
        ``p_onset`` was written before that key existed, when every P onset was the rules': it reads back as ``rules``."""
        names = {f.name for f in dataclasses.fields(cls)}
        data = {"p_onset": "rules", **data}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown SignalConfig keys {unknown}; known keys: {sorted(names)}")
        return cls(**data)
