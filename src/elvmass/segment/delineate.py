"""Wave boundaries from the learned segmentation model, as a selectable delineation method of the signal
pipeline (``delineation="segment"``; the default is ``"hybrid"``, the rules with a network's P onset averaged in,
and ``"rules"`` is the rules alone; see docs/delineation.md).

The segmentation model (:mod:`elvmass.segment.model`) labels every sample; its *global* waves (Viterbi on
the mean of the 12 leads' posteriors: a multi-lead consensus) are paired with the signal pipeline's R
peaks: a QRS complex belongs to the R peak inside it, the P wave to the QRS it immediately precedes (P end
at most ``P_GAP_MAX_S`` before QRS onset), the T wave to the QRS it immediately follows (T start at most
``T_GAP_MAX_S`` after QRS end). The boundaries of the median beat are the **medians over beats** of each
boundary relative to its R peak (as the rule-based delineator works on the median beat). No P wave when
fewer than half of the QRS complexes have one; then, as for the rules, the P-wave consistency check of
:func:`elvmass.signal.fiducials.p_wave_absent` runs on the delineated P wave (``no_p_wave:*`` flags).

There is no threshold here tuned on any data: the only fitted thing is the network, trained on LUDB
records whose number is not divisible by 5 (:data:`elvmass.segment.ludb.TRAIN`). So it must be scored only
on LUDB records divisible by 5 (:data:`~elvmass.segment.ludb.HELD_OUT`); benchmarks/bench_delineation.py
does so.

    >>> from elvmass.io import example_ecg_path, read_ecg
    >>> a = analyze(read_ecg(example_ecg_path()), delineation="segment")
    >>> 80 <= a.measured["qrs_ms"] <= 110, a.fiducials_ms["p_on"] < a.fiducials_ms["qrs_on"] < a.fiducials_ms["t_off"]
    (True, True)

``delineation="hybrid"`` (the pipeline's default, ``SignalConfig(p_onset="hybrid")``; see
:mod:`elvmass.signal.p_onset_net`) keeps every boundary of the rules but P onset, which is the mean of the
rules' and the network's on the chosen beat. Its network is a second one, trained on LUDB's odd-numbered
records only (``elvmass/data/segment_odd``), so the even ones stay held out for it as for the rules. Its
weights and settings are the only fitted things (chosen by cross-validation on the odd records;
docs/delineation.md). The pipeline runs its ONNX graph; :func:`hybrid_fiducials` runs a network in PyTorch.

    >>> rec = read_ecg(example_ecg_path())
    >>> rules, hybrid = analyze(rec), analyze(rec, delineation="hybrid")
    >>> [k for k in FIDUCIAL_NAMES if hybrid.fiducials_ms[k] != rules.fiducials_ms[k]]
    ['p_on']
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache, partial

import numpy as np

from elvmass.segment.hmm import waves_from_labels
from elvmass.segment.model import WAVE_NAMES, Segmenter, Wave, load_segmenter
from elvmass.segment.network import INPUT_BAND, MODEL_FS_HZ, prepare_leads
from elvmass.signal import p_onset_net
from elvmass.signal.analysis import ECGAnalysis, analyze_ecg
from elvmass.signal.config import SignalConfig
from elvmass.signal.fiducials import FIDUCIAL_NAMES, locate_fiducials
from elvmass.signal.p_onset_net import P_ONSET_MODEL

DELINEATION_METHODS = ("rules", "segment", "hybrid")
#: a P wave belongs to the QRS that follows it when it ends at most this long before the QRS onset
P_GAP_MAX_S = 0.4
#: a T wave belongs to the QRS it follows when it starts at most this long after the QRS end
T_GAP_MAX_S = 0.5
#: a QRS complex belongs to an R peak inside it, widened by this much each side
R_MARGIN_S = 0.05


@lru_cache(maxsize=1)
def shipped_segmenter() -> Segmenter:
    """The segmentation model shipped in the package, loaded once per process."""
    return load_segmenter()


@lru_cache(maxsize=1)
def shipped_p_onset_segmenter() -> Segmenter:
    """The hybrid P onset's network in PyTorch (trained on LUDB's odd records, ``elvmass/data/segment_odd``; the
    pipeline runs its ONNX graph), loaded once."""
    return load_segmenter(packaged=P_ONSET_MODEL)


def global_waves(segmenter: Segmenter, signal_mv: np.ndarray, fs_hz: float) -> list[Wave]:
    """The global (12-lead consensus) waves of :meth:`Segmenter.segment_signal`, without decoding each lead
    on its own (half the time)."""
    prob = segmenter.posteriors(prepare_leads(signal_mv, fs_hz))
    labels = segmenter.decode(prob.mean(axis=0))
    return [Wave(WAVE_NAMES[c], a / MODEL_FS_HZ, b / MODEL_FS_HZ) for c, a, b in waves_from_labels(labels)]


def beats_from_waves(waves: list[Wave], r_peaks_s: np.ndarray) -> list[dict]:
    """Per R peak that a global QRS complex contains: ``r_s`` and the boundaries (s from the record start;
    NaN where the beat has no such wave). Offsets are the waves' last samples, as LUDB marks them."""
    r = np.asarray(r_peaks_s, dtype=np.float64)
    out = []
    if r.size == 0:
        return out
    for i, w in enumerate(waves):
        if w.wave != "QRS":
            continue
        inside = np.flatnonzero((r >= w.onset_s - R_MARGIN_S) & (r <= w.offset_s + R_MARGIN_S))
        if inside.size == 0:
            continue
        mid = 0.5 * (w.onset_s + w.offset_s)
        j = int(inside[np.argmin(np.abs(r[inside] - mid))])
        row = {"r_s": float(r[j]), **{k: math.nan for k in FIDUCIAL_NAMES}}
        row["qrs_on"], row["qrs_off"] = w.onset_s, w.offset_s
        if i > 0 and waves[i - 1].wave == "P" and w.onset_s - waves[i - 1].offset_s <= P_GAP_MAX_S:
            row["p_on"], row["p_off"] = waves[i - 1].onset_s, waves[i - 1].offset_s
        if i + 1 < len(waves) and waves[i + 1].wave == "T" and waves[i + 1].onset_s - w.offset_s <= T_GAP_MAX_S:
            row["t_off"] = waves[i + 1].offset_s
        out.append(row)
    return out


def median_beat_offsets_s(beats: list[dict]) -> dict[str, float]:
    """Median over beats of each boundary relative to its R peak (s); P only when at least half the beats
    have a P wave, otherwise NaN."""
    out = {k: math.nan for k in FIDUCIAL_NAMES}
    if not beats:
        return out
    for k in FIDUCIAL_NAMES:
        rel = np.array([b[k] - b["r_s"] for b in beats if math.isfinite(b[k])])
        if k.startswith("p_") and 2 * rel.size < len(beats):
            continue
        if rel.size:
            out[k] = float(np.median(rel))
    return out


def segment_fiducials(record, filtered_mv, fs_hz, r_peaks, beat_mv, r_index, rr_s, r_sample=None,
                      segmenter: Segmenter | None = None) -> dict:
    """A ``fiducials_fn`` for :func:`elvmass.signal.analysis.analyze_ecg`: the segmentation model's median-beat
    boundaries in samples of the delineation beat (R peak at ``r_index``)."""
    waves = global_waves(segmenter or shipped_segmenter(), record.signal_mv, record.fs_hz)
    rel = median_beat_offsets_s(beats_from_waves(waves, np.asarray(r_peaks, dtype=np.float64) / fs_hz))
    n = np.asarray(beat_mv).shape[-1]
    out = {}
    for k, v in rel.items():
        s = r_index + v * fs_hz if math.isfinite(v) else math.nan
        # a boundary outside the delineation beat cannot be measured on it (P onset may precede the model's
        # window, which is inside this one, and is still kept)
        out[k] = s if math.isfinite(s) and 0 <= s <= n - 1 else math.nan
    if math.isfinite(out["qrs_on"]) and not (out["qrs_on"] < r_index < out["qrs_off"]):
        out = {k: math.nan for k in FIDUCIAL_NAMES}  # the consensus QRS missed the R peak: nothing to measure on
    return out


def network_p_onset(segmenter: Segmenter, filtered_mv: np.ndarray, fs_hz: float, r_sample: int,
                    qrs_on_sample: float) -> float:
    """:func:`elvmass.signal.p_onset_net.network_p_onset` with ``segmenter``'s network run in PyTorch: the
    reference the shipped ONNX graph is tested against, and the way to try a network of one's own."""
    return p_onset_net.network_p_onset(filtered_mv, fs_hz, r_sample, qrs_on_sample,
                                       probability=lambda x: segmenter.posteriors(x).mean(axis=0)[:, 1])


def hybrid_fiducials(record, filtered_mv, fs_hz, r_peaks, beat_mv, r_index, rr_s, r_sample=None,
                     segmenter: Segmenter | None = None, config: SignalConfig = SignalConfig()) -> dict:
    """A ``fiducials_fn``: the rules' boundaries, with the hybrid P onset of :mod:`elvmass.signal.p_onset_net`
    computed with ``segmenter``'s network (PyTorch) instead of the shipped ONNX graph. ``config`` is the
    pipeline's: when its band is not the network's 0.5-40 Hz without notch, the network gets the record
    filtered its own way."""
    fid = locate_fiducials(beat_mv, fs_hz, r_index, rr_s)
    if r_sample is None or not (math.isfinite(fid["p_on"]) and math.isfinite(fid["qrs_on"])):
        return fid
    if (config.low_hz, config.high_hz, config.notch_hz) != INPUT_BAND:
        from elvmass.signal.analysis import band_passed_at_delineation_rate

        # at the delineation's rate (``fs_hz``), as the pipeline brings the record there
        filtered_mv = band_passed_at_delineation_rate(record.signal_mv, record.fs_hz, *INPUT_BAND)
    net_on = network_p_onset(segmenter or shipped_p_onset_segmenter(), filtered_mv, fs_hz, r_sample,
                             r_sample + fid["qrs_on"] - r_index)
    fid["p_on"] = p_onset_net.hybrid_p_onset(fid["p_on"], net_on + (r_index - r_sample), fs_hz)
    return fid


def analyze_ecg_hybrid(record, config: SignalConfig = SignalConfig(), rng=None, segmenter: Segmenter | None = None) -> ECGAnalysis:
    """:func:`~elvmass.signal.analysis.analyze_ecg` with the hybrid P onset (``p_onset="hybrid"``, the default);
    with ``segmenter``, that network's (PyTorch) instead of the shipped one's."""
    if segmenter is None:
        return analyze_ecg(record, replace(config, p_onset="hybrid"), rng)
    return analyze_ecg(record, config, rng, fiducials_fn=partial(hybrid_fiducials, segmenter=segmenter, config=config))


def analyze_ecg_segment(record, config: SignalConfig = SignalConfig(), rng=None, segmenter: Segmenter | None = None) -> ECGAnalysis:
    """:func:`~elvmass.signal.analysis.analyze_ecg` with the segmentation model's boundaries."""
    return analyze_ecg(record, config, rng, fiducials_fn=partial(segment_fiducials, segmenter=segmenter))


def analyze(record, config: SignalConfig = SignalConfig(), rng=None, delineation: str = "rules") -> ECGAnalysis:
    """The signal pipeline with the chosen delineation method (one of :data:`DELINEATION_METHODS`)."""
    if delineation == "rules":
        return analyze_ecg(record, replace(config, p_onset="rules"), rng)
    if delineation == "segment":
        return analyze_ecg_segment(record, config, rng)
    if delineation == "hybrid":
        return analyze_ecg_hybrid(record, config, rng)
    raise ValueError(f"delineation must be one of {', '.join(DELINEATION_METHODS)}, got {delineation!r}")


def delineate_record(record, segmenter: Segmenter | None = None) -> list[dict]:
    """Every beat's own boundaries from the segmentation model (not a median beat), in samples of the record,
    with ``qrs_peak`` (the R peak of the signal pipeline): the per-beat column of the delineation benchmark."""
    from elvmass.signal.filters import bandpass_filter
    from elvmass.signal.peaks import _peaks_on_combined, combine_leads

    fs = record.fs_hz
    cfg = SignalConfig()
    filtered = bandpass_filter(record.signal_mv, fs, cfg.low_hz, cfg.high_hz, cfg.notch_hz)
    r = _peaks_on_combined(combine_leads(filtered), fs) / fs
    waves = global_waves(segmenter or shipped_segmenter(), record.signal_mv, fs)
    return [{"qrs_peak": b["r_s"] * fs, **{k: b[k] * fs for k in FIDUCIAL_NAMES}} for b in beats_from_waves(waves, r)]
