"""Reference wave boundaries from LUDB's cardiologist annotations, as one global boundary per wave.

LUDB (Kalyakulina et al., IEEE Access 8:186181, 2020, doi:10.1109/ACCESS.2020.3029211) annotates every
lead separately: for each P wave, QRS complex and T wave in that lead, its onset ``(``, peak (``p``,
``N``, ``t``) and offset ``)``. A *global* boundary (one instant for all 12 leads, what a multi-lead
delineator reports) is taken as the **median over the leads that annotate that wave**: LUDB marks most
waves at the same instant in all leads, and the median is robust to the odd lead.

=================  =====================================================================
key                meaning (samples at the record's rate, float; NaN where no lead has it)
=================  =====================================================================
``qrs_peak``       median over leads of the QRS peak mark ``N``
``p_on, p_off``    P wave onset / offset (NaN for every beat of an AF/flutter record)
``qrs_on, qrs_off`` QRS onset / offset
``t_off``          T wave offset
``n_leads``        number of leads annotating this QRS
``<key>_leads``    for each boundary above, the annotating leads' own marks (a list; the median is the key)
=================  =====================================================================

Beats are the QRS complexes (QRS peak marks of all leads clustered within 60 ms); a P wave belongs to
the QRS that follows it (within 600 ms), a T wave to the QRS it follows (within 700 ms).

    >>> from pathlib import Path
    >>> p = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "ludb" / "data" / "1"
    >>> beats = read_ludb_beats(p) if p.with_suffix(".hea").exists() else None  # doctest: +SKIP
    >>> round(beats[1]["qrs_on"])                                               # doctest: +SKIP
    1322
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

LUDB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
BOUNDARIES = ("p_on", "p_off", "qrs_on", "qrs_off", "t_off")
#: 2-sigma tolerances (ms) of the CSE working party (Willems et al. 1985), as used in the delineation
#: literature (Martinez et al., IEEE TBME 51:570, 2004, Table I).
CSE_TOLERANCE_MS = {"p_on": 10.2, "p_off": 12.7, "qrs_on": 6.5, "qrs_off": 11.6, "t_off": 30.6}


def _waves(symbols, samples) -> list[tuple[str, float, float, float]]:
    """(kind, onset, peak, offset) of each annotated wave in one lead (onset/offset NaN when unmarked)."""
    out = []
    sym = list(symbols)
    for i, s in enumerate(sym):
        if s not in ("p", "N", "t"):
            continue
        on = float(samples[i - 1]) if i > 0 and sym[i - 1] == "(" else math.nan
        off = float(samples[i + 1]) if i + 1 < len(sym) and sym[i + 1] == ")" else math.nan
        out.append((s, on, float(samples[i]), off))
    return out


def read_ludb_beats(record: str | Path, fs_hz: float = 500.0) -> list[dict[str, float]]:
    """Global reference boundaries of every annotated QRS complex of one LUDB record (``.../data/N``)."""
    import wfdb

    record = str(record)
    per_lead = []
    for lead in LUDB_LEADS:
        try:
            ann = wfdb.rdann(record, lead)
        except (FileNotFoundError, OSError):
            continue
        per_lead.append(_waves(ann.symbol, ann.sample))
    # beats: cluster the QRS peaks of all leads within 60 ms
    peaks = sorted(p for waves in per_lead for (k, _, p, _) in waves if k == "N")
    clusters: list[list[float]] = []
    for p in peaks:
        if clusters and p - clusters[-1][-1] <= 0.06 * fs_hz:
            clusters[-1].append(p)
        else:
            clusters.append([p])
    centres = [float(np.median(c)) for c in clusters]
    beats = [{"qrs_peak": c, **{b: [] for b in BOUNDARIES}, "n_leads": 0} for c in centres]
    if not beats:
        return []
    cen = np.asarray(centres)
    for waves in per_lead:
        for kind, on, peak, off in waves:
            if kind == "N":
                j = int(np.argmin(np.abs(cen - peak)))
                beats[j]["qrs_on"].append(on)
                beats[j]["qrs_off"].append(off)
                beats[j]["n_leads"] += 1
            elif kind == "p":  # the QRS that follows
                nxt = np.flatnonzero(cen > peak)
                if nxt.size and cen[nxt[0]] - peak <= 0.6 * fs_hz:
                    beats[nxt[0]]["p_on"].append(on)
                    beats[nxt[0]]["p_off"].append(off)
            else:  # T: the QRS that precedes
                prv = np.flatnonzero(cen < peak)
                if prv.size and peak - cen[prv[-1]] <= 0.7 * fs_hz:
                    beats[prv[-1]]["t_off"].append(off)
    out = []
    for b in beats:
        row = {"qrs_peak": b["qrs_peak"], "n_leads": b["n_leads"]}
        for key in BOUNDARIES:
            vals = [float(v) for v in b[key] if math.isfinite(v)]
            row[key] = float(np.median(vals)) if vals else math.nan
            row[f"{key}_leads"] = vals
        out.append(row)
    return out
