"""The hybrid P onset: the rules' onset on the median beat averaged with a small network's on the chosen beat
(``SignalConfig(p_onset="hybrid")``, ``elvmass beats --delineation hybrid``; the default ``p_onset="rules"``
keeps the rules' alone).

| step | what |
|---|---|
| network input | the chosen beat's 12 band-passed (0.5-40 Hz) leads from ``P_NET_BEFORE_S`` (600 ms) before its R peak to ``P_NET_AFTER_S`` (100 ms) after it, resampled to 250 Hz, each lead divided by its 99th percentile of \\|x\\| |
| network | the segmentation U-Net of :mod:`elvmass.segment` trained on LUDB's odd-numbered records only (the rules' tuning part), shipped as ``elvmass/data/segment_odd/segment.onnx`` and run with onnxruntime on one thread |
| network onset | where the mean over leads of its P-wave probability first reaches ``P_NET_THRESHOLD`` (0.5), going back from its maximum between 480 and 10 ms before QRS onset, interpolated between its samples |
| hybrid onset | ``P_NET_WEIGHT`` (0.5) x the network's + 0.5 x the rules'; the rules' alone when the two are more than ``P_NET_AGREE_MS`` (40 ms) apart (the network found another wave) or the network has none |

Why: the two onsets err nearly independently (correlation 0.06-0.22 on LUDB's tuning part); held out (LUDB's
even-numbered sinus records, chosen beats) the share within the CSE tolerance (10.2 ms) rises from 78.7 % to
85.1 %; on the carts' files the mean \\|PR - device PR\\| falls from 5.3 to 4.3 ms (docs/delineation.md, where
every setting above was chosen by cross-validation on the odd records). Cost: about 1 ms per ECG on one core.

    >>> import numpy as np
    >>> from elvmass.io import example_ecg_path, read_ecg
    >>> from elvmass.signal import SignalConfig, analyze_ecg
    >>> rec = read_ecg(example_ecg_path())
    >>> hybrid, rules = analyze_ecg(rec, SignalConfig(p_onset="hybrid")), analyze_ecg(rec)
    >>> [k for k, v in hybrid.fiducials_ms.items() if v != rules.fiducials_ms[k]]
    ['p_on']
    >>> x = np.zeros((12, 350)); x[:, 150:170] = 1.0           # a 40-ms square "wave" in every lead
    >>> prepared_window(x, 500.0).shape                          # 700 ms at the network's 250 Hz
    (12, 175)
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import numpy as np

from elvmass.signal.fiducials import P_SEARCH_MS

#: the network's sampling rate and the band its training input was filtered to (low Hz, high Hz, notch)
NET_FS_HZ = 250.0
NET_BAND = (0.5, 40.0, None)
#: the chosen beat's window the network sees, around its R peak
P_NET_BEFORE_S = 0.6
P_NET_AFTER_S = 0.1
#: the network's P onset: where the mean over leads of its P probability first reaches this, going back from its maximum
P_NET_THRESHOLD = 0.5
#: hybrid onset = this weight x the network's + (1 - weight) x the rules', when the two are at most P_NET_AGREE_MS apart
P_NET_WEIGHT = 0.5
P_NET_AGREE_MS = 40.0
#: the package folder of the network (trained on LUDB's odd records) and its ONNX graph
P_ONSET_MODEL = "segment_odd"
ONNX_FILE = "segment.onnx"
#: the network's length must be a multiple of this (three poolings by 2)
_LENGTH_MULTIPLE = 8
#: windows up to this many samples are resampled with a cached matrix (the same polyphase filter, 4x faster)
_MATRIX_MAX_SAMPLES = 2048


@lru_cache(maxsize=8)
def _resampling_matrix(n: int, up: int, down: int) -> np.ndarray:
    """(n, m) float64: ``x @ M`` is ``scipy.signal.resample_poly(x, up, down, axis=-1)`` for rows of length n."""
    from scipy.signal import resample_poly

    return resample_poly(np.eye(n), up, down, axis=-1)


def prepared_window(filtered_mv: np.ndarray, fs_hz: float) -> np.ndarray:
    """(leads, n) band-passed mV at ``fs_hz`` -> (leads, m) float32 network input at :data:`NET_FS_HZ`, each lead
    divided by its 99th percentile of \\|x\\| (at least 0.02): what
    :func:`elvmass.segment.network.prepare_filtered` gives, computed for a short window without scipy's per-call
    filter design."""
    from fractions import Fraction

    x = np.nan_to_num(np.asarray(filtered_mv, dtype=np.float32))
    if abs(fs_hz - NET_FS_HZ) < 1e-9:
        xr = x.copy()
    else:
        ratio = Fraction(NET_FS_HZ / float(fs_hz)).limit_denominator(1000)
        if x.shape[-1] <= _MATRIX_MAX_SAMPLES:
            xr = (x.astype(np.float64) @ _resampling_matrix(x.shape[-1], ratio.numerator, ratio.denominator)).astype(np.float32)
        else:
            from elvmass.record import resample_signal

            xr = resample_signal(x, fs_hz, NET_FS_HZ)
    a = np.abs(xr)
    m = a.shape[-1]
    pos = 0.99 * (m - 1)                     # np.percentile's linear interpolation, from two order statistics
    lo = int(math.floor(pos))
    hi = min(lo + 1, m - 1)
    part = np.partition(a, (lo, hi), axis=-1)
    scale = part[:, lo] + (part[:, hi] - part[:, lo]) * (pos - lo)
    return (xr / np.maximum(scale, 0.02)[:, None]).astype(np.float32)


@lru_cache(maxsize=4)
def _session(model: str = P_ONSET_MODEL):
    """The onnxruntime session of the packaged network, one thread, created once per process."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    data = (resources.files("elvmass") / "data" / model / ONNX_FILE).read_bytes()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def p_wave_probability(prepared: np.ndarray, model: str = P_ONSET_MODEL) -> np.ndarray:
    """(leads, m) :func:`prepared_window` output -> (m,) the mean over leads of the network's P-wave probability."""
    leads, m = prepared.shape
    x = np.zeros((1, 1, leads, m + (-m) % _LENGTH_MULTIPLE), dtype=np.float32)
    x[0, 0, :, :m] = prepared
    logits = _session(model).run(None, {"x": x})[0][0, :, :, :m].astype(np.float64)   # (4, leads, m)
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return (e[1] / e.sum(axis=0)).mean(axis=0)


def network_p_onset(filtered_mv: np.ndarray, fs_hz: float, r_sample: int, qrs_on_sample: float,
                    probability=None, leads=None) -> float:
    """The network's P onset (a sample of ``filtered_mv``, float) of the beat whose R peak is ``r_sample`` and
    whose QRS starts at ``qrs_on_sample``; NaN when its P probability never reaches :data:`P_NET_THRESHOLD`
    between ``P_SEARCH_MS`` (480) and 10 ms before QRS onset, or is already up at the first sample it sees.
    ``filtered_mv``: the record band-passed to :data:`NET_BAND`, as the network's training input was.
    ``probability``: (leads, m) prepared input -> (m,) P probability; by default :func:`p_wave_probability`
    (the shipped network; :func:`elvmass.segment.delineate.network_p_onset` passes another network's).
    ``leads``: the rows to average over (a partial record's present leads); by default every row."""
    x = np.asarray(filtered_mv)
    a = max(0, int(r_sample) - int(round(P_NET_BEFORE_S * fs_hz)))
    b = min(x.shape[-1], int(r_sample) + int(round(P_NET_AFTER_S * fs_hz)))
    if b - a < int(0.2 * fs_hz):
        return math.nan
    window = x[:, a:b] if leads is None else x[np.asarray(leads, dtype=np.int64), a:b]
    if window.shape[0] == 0:
        return math.nan
    prob = (probability or p_wave_probability)(prepared_window(window, fs_hz))
    step = fs_hz / NET_FS_HZ                          # record samples per network sample
    q = (qrs_on_sample - a) / step
    lo = max(0, int(q - P_SEARCH_MS / 1000.0 * NET_FS_HZ))
    hi = min(prob.size, int(q - 0.010 * NET_FS_HZ))
    if hi - lo < 5:
        return math.nan
    k = lo + int(np.argmax(prob[lo:hi]))
    if prob[k] < P_NET_THRESHOLD:
        return math.nan
    while k > 0 and prob[k - 1] >= P_NET_THRESHOLD:
        k -= 1
    if k == 0:
        return math.nan
    on = k - 1 + (P_NET_THRESHOLD - prob[k - 1]) / (prob[k] - prob[k - 1])
    return a + on * step


def hybrid_p_onset(rules_p_on: float, network_p_on: float, fs_hz: float) -> float:
    """The hybrid P onset (samples) from the rules' and the network's, both in the same samples.

        >>> hybrid_p_onset(100.0, 110.0, 500.0), hybrid_p_onset(100.0, 130.0, 500.0), hybrid_p_onset(100.0, math.nan, 500.0)
        (105.0, 100.0, 100.0)
    """
    if math.isfinite(network_p_on) and abs(network_p_on - rules_p_on) <= P_NET_AGREE_MS * fs_hz / 1000.0:
        return P_NET_WEIGHT * network_p_on + (1.0 - P_NET_WEIGHT) * rules_p_on
    return rules_p_on
