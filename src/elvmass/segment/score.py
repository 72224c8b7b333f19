"""Scoring wave boundaries against LUDB's cardiologist annotations, as in LUDB's own delineation papers.

Per boundary kind (:data:`BOUNDARIES`: P onset/offset, QRS onset/offset, T offset) and lead: every
annotated boundary is matched to the nearest not yet matched detected boundary of the same kind within
``TOLERANCE_S`` (150 ms); matched pairs are true positives and give the error (detected - annotated).
Detections count (for PPV) only inside the lead's annotated span widened by ``SPAN_MARGIN_S`` (a detected
boundary just outside the first or last annotated wave is still scored, one of an unannotated beat is not).

    >>> s = BoundaryScore()
    >>> s.add([1.00, 2.00], [1.004, 2.010, 3.5], span=(0.9, 2.1))
    >>> s.tp, s.n_true, s.n_detected, round(s.mae_ms, 1)
    (2, 2, 2, 7.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BOUNDARIES = ("p_on", "p_off", "qrs_on", "qrs_off", "t_off")
TOLERANCE_S = 0.150
SPAN_MARGIN_S = 0.050
_KIND = {"p_on": ("P", 0), "p_off": ("P", 1), "qrs_on": ("QRS", 0), "qrs_off": ("QRS", 1), "t_off": ("T", 1)}
_CLASS = {1: "P", 2: "QRS", 3: "T"}


@dataclass
class BoundaryScore:
    tp: int = 0
    n_true: int = 0
    n_detected: int = 0
    errors_ms: list = field(default_factory=list)

    def add(self, true_s, detected_s, span) -> None:
        lo, hi = span[0] - SPAN_MARGIN_S, span[1] + SPAN_MARGIN_S
        det = sorted(float(d) for d in detected_s if lo <= d <= hi)
        used = np.zeros(len(det), dtype=bool)
        self.n_true += len(true_s)
        self.n_detected += len(det)
        for t in sorted(true_s):
            best, best_d = -1, TOLERANCE_S
            for j, d in enumerate(det):
                if not used[j] and abs(d - t) <= best_d:
                    best, best_d = j, abs(d - t)
            if best >= 0:
                used[best] = True
                self.tp += 1
                self.errors_ms.append((det[best] - t) * 1000.0)

    @property
    def sensitivity(self) -> float:
        return self.tp / self.n_true if self.n_true else math.nan

    @property
    def ppv(self) -> float:
        return self.tp / self.n_detected if self.n_detected else math.nan

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.errors_ms)) if self.errors_ms else math.nan

    @property
    def sd_ms(self) -> float:
        return float(np.std(self.errors_ms, ddof=1)) if len(self.errors_ms) > 1 else math.nan

    @property
    def mae_ms(self) -> float:
        return float(np.mean(np.abs(self.errors_ms))) if self.errors_ms else math.nan

    def as_dict(self) -> dict:
        return {"sensitivity": self.sensitivity, "ppv": self.ppv, "mean_ms": self.mean_ms, "sd_ms": self.sd_ms,
                "mae_ms": self.mae_ms, "n_true": self.n_true, "n_detected": self.n_detected, "tp": self.tp}


def true_boundaries(rec, lead: int) -> dict[str, list[float]]:
    """Annotated boundaries of one lead of a :class:`~elvmass.segment.ludb.LudbRecord`, in s."""
    out = {k: [] for k in BOUNDARIES}
    for cls, on, off in rec.waves[lead]:
        for key, (name, which) in _KIND.items():
            if _CLASS[cls] == name:
                out[key].append((on if which == 0 else off) / rec.fs_hz)
    return out


def wave_boundaries(waves) -> dict[str, list[float]]:
    """Boundaries in s of a list of :class:`~elvmass.segment.model.Wave`."""
    out = {k: [] for k in BOUNDARIES}
    for w in waves:
        for key, (name, which) in _KIND.items():
            if w.wave == name:
                out[key].append(w.onset_s if which == 0 else w.offset_s)
    return out


def score_records(records, detect) -> dict[str, BoundaryScore]:
    """``detect(rec)`` -> 12 dicts (one per lead) of boundary kind -> detected times (s); scored against
    every annotated lead of every record."""
    scores = {k: BoundaryScore() for k in BOUNDARIES}
    for rec in records:
        found = detect(rec)
        for lead in range(12):
            if rec.spans[lead, 0] < 0:
                continue
            span = (rec.spans[lead, 0] / rec.fs_hz, rec.spans[lead, 1] / rec.fs_hz)
            truth = true_boundaries(rec, lead)
            for k in BOUNDARIES:
                scores[k].add(truth[k], found[lead].get(k, []), span)
    return scores


def segmenter_detector(segmenter):
    """A ``detect`` function for :func:`score_records` from a :class:`~elvmass.segment.model.Segmenter`."""

    def detect(rec):
        seg = segmenter.segment_signal(rec.signal_mv, rec.fs_hz)
        return [wave_boundaries(w) for w in seg.lead_waves]

    return detect
