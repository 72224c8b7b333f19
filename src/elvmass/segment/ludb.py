"""LUDB, the Lobachevsky University Electrocardiography Database, as training and test data for the
segmentation model: signals, per-lead sample labels and the annotated span of every lead.

Kalyakulina AI et al., "LUDB: A New Open-Access Validation Tool for Electrocardiogram Delineation
Algorithms", IEEE Access 8:186181-186190 (2020), doi:10.1109/ACCESS.2020.3029211 (ODC-By 1.0).
Each record is 10 s, 12 leads, 500 Hz; each lead has its own cardiologist annotation file (``N.i`` ...
``N.v6``) with ``(`` onset, ``p``/``N``/``t`` peak, ``)`` offset of every annotated P wave, QRS complex
and T wave. The first and last beats are often not annotated, so everything is compared only inside a
lead's *annotated span* (first annotated onset to last annotated offset).

The split is fixed and documented: records whose number is divisible by 5 (5, 10, ..., 120: 24 records)
are held out for testing (:data:`HELD_OUT`); the other 96 train the model (:data:`TRAIN`).

    >>> len(TRAIN), len(HELD_OUT), HELD_OUT[:3]
    (96, 24, (5, 10, 15))
    >>> labels_from_annotation(["(", "N", ")", "(", "t", ")"], [2, 4, 6, 8, 10, 12], 14).tolist()
    [0, 0, 2, 2, 2, 2, 2, 0, 3, 3, 3, 3, 3, 0]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elvmass.errors import ElvmassError

#: class index of every sample label
NONE, P, QRS, T = 0, 1, 2, 3
CLASS_NAMES = ("none", "P", "QRS", "T")
_PEAK_CLASS = {"p": P, "N": QRS, "t": T}

LUDB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
LUDB_FS_HZ = 500.0
ALL_RECORDS = tuple(range(1, 121))
HELD_OUT = tuple(r for r in ALL_RECORDS if r % 5 == 0)
TRAIN = tuple(r for r in ALL_RECORDS if r % 5 != 0)
#: the alternative training split: the odd records, which are the rule-based delineation's tuning part
#: (``benchmarks/bench_delineation.py``), so that a network trained on them can be scored on the even
#: records that report the rules
TRAIN_ODD = tuple(r for r in ALL_RECORDS if r % 2 == 1)
TRAIN_SPLITS = {"not-div5": TRAIN, "odd": TRAIN_ODD}


@dataclass
class LudbRecord:
    """One LUDB record: ``signal_mv`` (12, n) at ``fs_hz``, ``labels`` (12, n) class per sample,
    ``spans`` (12, 2) first and last annotated sample of each lead (inclusive), ``waves`` per lead a list of
    ``(class, onset, offset)`` sample triples."""

    number: int
    signal_mv: np.ndarray
    fs_hz: float
    labels: np.ndarray
    spans: np.ndarray
    waves: list[list[tuple[int, int, int]]]


def waves_from_annotation(symbols, samples) -> list[tuple[int, int, int]]:
    """``(class, onset, offset)`` for every peak symbol with an onset before and an offset after it."""
    symbols = list(symbols)
    samples = [int(s) for s in samples]
    out = []
    for i, sym in enumerate(symbols):
        cls = _PEAK_CLASS.get(sym)
        if cls is None:
            continue
        if i > 0 and symbols[i - 1] == "(" and i + 1 < len(symbols) and symbols[i + 1] == ")":
            out.append((cls, samples[i - 1], samples[i + 1]))
    return out


def labels_from_annotation(symbols, samples, n: int) -> np.ndarray:
    """A length-``n`` class array (0 none, 1 P, 2 QRS, 3 T) from one lead's annotation symbols."""
    lab = np.zeros(n, dtype=np.int64)
    for cls, on, off in waves_from_annotation(symbols, samples):
        lab[max(on, 0) : min(off, n - 1) + 1] = cls
    return lab


def read_ludb_record(ludb_dir, number: int) -> LudbRecord:
    """Signals, labels and annotated spans of LUDB record ``number`` (1-120) from ``ludb_dir``
    (the folder holding ``data/`` and ``ludb.csv``, or ``data/`` itself)."""
    import wfdb

    base = Path(ludb_dir)
    data = base / "data" if (base / "data").is_dir() else base
    stem = data / str(number)
    if not stem.with_suffix(".hea").is_file():
        raise ElvmassError(f"{stem}.hea: LUDB record {number} not found (give the LUDB folder with data/N.hea)")
    rec = wfdb.rdrecord(str(stem))
    names = [s.lower() for s in rec.sig_name]
    sig = np.stack([rec.p_signal[:, names.index(lead)] for lead in LUDB_LEADS]).astype(np.float32)
    n = sig.shape[1]
    labels = np.zeros((12, n), dtype=np.int64)
    spans = np.full((12, 2), -1, dtype=np.int64)
    waves = []
    for k, lead in enumerate(LUDB_LEADS):
        ann = wfdb.rdann(str(stem), lead)
        w = waves_from_annotation(ann.symbol, ann.sample)
        waves.append(w)
        labels[k] = labels_from_annotation(ann.symbol, ann.sample, n)
        if w:
            spans[k] = (min(on for _, on, _ in w), max(off for _, _, off in w))
    return LudbRecord(number, np.nan_to_num(sig), float(rec.fs), labels, spans, waves)


def read_ludb(ludb_dir, numbers=ALL_RECORDS) -> list[LudbRecord]:
    return [read_ludb_record(ludb_dir, n) for n in numbers]
