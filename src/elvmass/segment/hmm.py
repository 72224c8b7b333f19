"""Viterbi decoding that makes the network's per-sample labels a physiologically ordered sequence.

Hidden states (:data:`STATES`) walk the cardiac cycle::

    none_tp -> P -> none_pr -> QRS -> none_st -> T -> none_tp
          \\___________________^   (a QRS without a P wave: atrial fibrillation, junctional beats)

Each state emits one label (none, P, QRS, T). The transition probabilities are estimated from the
training annotations (:func:`estimate_transitions`): the labelled samples of every training lead at the
model rate are turned into state sequences (a ``none`` run is ``none_pr`` after a P, ``none_st`` after a
QRS, ``none_tp`` otherwise) and the transitions counted, with add-one smoothing on the allowed edges of
the cycle only (every other transition has probability 0, so a T can never follow a P). The fitted
matrix ships with the weights (``transitions`` in the model's JSON) and is printed in docs/segment.md.
Emissions are the network's log posteriors. (Dividing them by the class priors first, the hybrid
network/HMM "scaled likelihood" of Bourlard & Morgan 1994, widened every wave by ~5-12 ms at each
boundary and lowered PPV on 12 LUDB training records (1, 11, 21, ...): P onset error -12.1 vs -0.2 ms,
QRS offset +5.9 vs -1.8 ms, so the plain posteriors are used.)

    >>> import numpy as np
    >>> A = np.log(np.full((6, 6), 1e-12) + np.eye(6) * 0.9 + np.roll(np.eye(6), 1, axis=1) * 0.1)
    >>> post = np.log(np.eye(4)[[0, 0, 1, 1, 0, 2, 2, 0, 3, 3, 0]] * 0.98 + 0.005)
    >>> viterbi_labels(post, A).tolist()
    [0, 0, 1, 1, 0, 2, 2, 0, 3, 3, 0]
"""

from __future__ import annotations

import numpy as np

STATES = ("none_tp", "P", "none_pr", "QRS", "none_st", "T")
#: the label (0 none, 1 P, 2 QRS, 3 T) each state emits
STATE_LABEL = np.array([0, 1, 0, 2, 0, 3])
#: allowed transitions besides staying: the cycle, and none_tp -> QRS (no P wave), P -> QRS (PR segment
#: shorter than a sample), QRS -> T (no ST segment), QRS -> none_tp (an unannotated T)
ALLOWED = {(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0), (0, 3), (1, 3), (3, 5), (3, 0)}


def state_sequence(labels: np.ndarray) -> np.ndarray:
    """The hidden-state sequence of one lead's label array (see the module text)."""
    labels = np.asarray(labels)
    states = np.zeros(labels.size, dtype=np.int64)
    waves = labels[labels > 0]
    # the last wave seen (0 none, else its label); before the first wave, the one the cycle puts before it
    last = {3: 2}.get(int(waves[0]), 0) if waves.size else 0
    for i, lab in enumerate(labels):
        if lab == 1:
            states[i] = 1
        elif lab == 2:
            states[i] = 3
        elif lab == 3:
            states[i] = 5
        else:
            states[i] = {1: 2, 2: 4}.get(last, 0)
        if lab:
            last = lab
    return states


def estimate_transitions(label_sequences) -> np.ndarray:
    """Row-stochastic (6, 6) transition matrix counted from state sequences of labelled stretches."""
    counts = np.zeros((6, 6))
    for labels in label_sequences:
        s = state_sequence(labels)
        np.add.at(counts, (s[:-1], s[1:]), 1.0)
    allowed = np.eye(6, dtype=bool)
    for a, b in ALLOWED:
        allowed[a, b] = True
    counts = np.where(allowed, counts + 1.0, 0.0)
    return counts / counts.sum(axis=1, keepdims=True)


def viterbi_labels(log_emission: np.ndarray, log_trans: np.ndarray, log_start: np.ndarray | None = None) -> np.ndarray:
    """Most likely label sequence. ``log_emission`` (n, 4) per-sample log scores of the four labels (or
    (leads, n, 4): every lead decoded at once); ``log_trans`` (6, 6) log transition matrix over :data:`STATES`."""
    e = np.asarray(log_emission, dtype=np.float64)
    single = e.ndim == 2
    if single:
        e = e[None]
    e = e[:, :, STATE_LABEL]  # (leads, n, 6)
    m, n = e.shape[:2]
    if n == 0:
        out = np.zeros((m, 0), dtype=np.int64)
        return out[0] if single else out
    delta = (np.full(6, -np.log(6.0)) if log_start is None else np.asarray(log_start, float)) + e[:, 0]
    back = np.zeros((n, m, 6), dtype=np.int8)
    lt = np.asarray(log_trans, dtype=np.float64)
    rows = np.arange(m)[:, None]
    cols = np.arange(6)[None, :]
    for t in range(1, n):
        scores = delta[:, :, None] + lt  # (leads, from, to)
        arg = scores.argmax(axis=1)
        back[t] = arg
        delta = scores[rows, arg, cols] + e[:, t]
    path = np.empty((m, n), dtype=np.int64)
    path[:, -1] = delta.argmax(axis=1)
    for t in range(n - 1, 0, -1):
        path[:, t - 1] = back[t, np.arange(m), path[:, t]]
    out = STATE_LABEL[path]
    return out[0] if single else out


def waves_from_labels(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """``(label, first sample, last sample)`` of every run of P, QRS or T in a label array."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.r_[0, change]
    ends = np.r_[change - 1, labels.size - 1]
    return [(int(labels[s]), int(s), int(e)) for s, e in zip(starts, ends) if labels[s]]
