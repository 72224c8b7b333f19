"""Turn per-lead arrays from any reader into one validated 12-lead :class:`ECGRecord`.

Every format reader ends here, so lead naming, lead order, limb-lead derivation,
unequal lead lengths or rates, and the quality flags are handled once, the same way
for every format::

    >>> import numpy as np
    >>> from elvmass.io._assemble import assemble_record
    >>> t = np.arange(5000) / 500.0
    >>> leads = {name: np.sin(2 * np.pi * t) for name in ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]}
    >>> rec = assemble_record("x.xml", leads, {n: 500.0 for n in leads}, source_format="test")
    >>> rec.signal_mv.shape, rec.fs_hz
    ((12, 5000), 500.0)
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from elvmass.errors import ECGReadError, path_text
from elvmass.median import median_1d
from elvmass.record import LEADS, MAX_FS_HZ, MIN_FS_HZ, ECGRecord, derive_limb_leads, resample_signal

#: A lead whose whole-record peak-to-peak amplitude is below this (mV) is called flat.
FLAT_PTP_MV = 0.01
#: Robust amplitude limits (mV) outside which the record's scaling is suspect.
MAX_PLAUSIBLE_PTP_MV = 30.0
MIN_PLAUSIBLE_PTP_MV = 0.02
#: Records shorter than this (s) are flagged ``short_record``.
MIN_DURATION_S = 2.0

_CANONICAL = {name.upper(): name for name in LEADS}
#: modified (Mason-Likar, torso-placed) limb leads of Holter and PhysioNet databases (MIT-BIH, QTDB: "MLII"),
#: taken as their standard lead only when partial records are asked for (the model never sees them)
_MODIFIED_LIMB = {"MLI": "I", "MLII": "II", "MLIII": "III", "ML1": "I", "ML2": "II", "ML3": "III"}
_PREFIXES = ("MDC_ECG_LEAD_", "ECG_LEAD_", "LEAD_", "LEAD ", "LEAD")


def canonical_lead_name(label: str) -> str | None:
    """Standard lead name for a file's label, or None for a non-standard lead.

    >>> [canonical_lead_name(x) for x in ["I", "MDC_ECG_LEAD_AVR", "Lead V5", "avl", "ii ", "V4R"]]
    ['I', 'aVR', 'V5', 'aVL', 'II', None]
    """
    text = str(label).strip().upper().replace("-", "_")
    for prefix in _PREFIXES:
        if text.startswith(prefix) and text != prefix:
            text = text[len(prefix):].strip(" _")
            break
    text = re.sub(r"\s+", "", text)
    return _CANONICAL.get(text)


def check_sampling_rate(path, fs_hz: float) -> float:
    """The rate as float, or an ECGReadError if it is not a plausible ECG sampling rate."""
    try:
        fs = float(fs_hz)
    except (TypeError, ValueError):
        raise ECGReadError(path, f"sampling rate {fs_hz!r} is not a number") from None
    if not np.isfinite(fs) or not (MIN_FS_HZ <= fs <= MAX_FS_HZ):
        raise ECGReadError(
            path, f"implausible sampling rate {fs_hz!r} Hz (expected {MIN_FS_HZ:g}-{MAX_FS_HZ:g} Hz)"
        )
    return fs


#: leads that agree within this (mV, a couple of quantisation steps) at an end may hold a calibration pulse
CALIBRATION_TOL_MV = 0.011


def assemble_record(
    path,
    leads: Mapping[str, np.ndarray] | list[tuple[str, np.ndarray]],
    rates_hz: Mapping[str, float] | list[float],
    *,
    source_format: str,
    flags: tuple[str, ...] = (),
    partial_leads: bool = False,
    **record_fields,
) -> ECGRecord:
    """Build the 12-lead record from labelled leads (in mV) and their rates.

    ``leads`` may be a mapping or a list of ``(label, samples)`` pairs (a list lets
    duplicated labels be detected). Labels are normalised with :func:`canonical_lead_name`;
    III, aVR, aVL, aVF are derived from I and II when absent (I/II/III from the other two).
    Leads at another rate are resampled to the most common rate and leads of unequal
    length are cut to the shortest, each with a flag. Raises :class:`ECGReadError` for a
    duplicated or missing lead, an absurd rate, or no samples.

    ``partial_leads=True`` (a 2-lead Holter or PhysioNet record, for delineation only): a lead the file
    lacks is all NaN, flagged ``missing_leads:<leads>`` (blocking: the model needs all 12), and modified
    limb leads (``MLII``) count as their standard lead, flagged ``modified_limb_leads:<labels>``.
    """
    pairs = list(leads.items()) if isinstance(leads, Mapping) else list(leads)
    rates = [rates_hz[label] for label, _ in pairs] if isinstance(rates_hz, Mapping) else list(rates_hz)
    if len(rates) != len(pairs):
        raise ECGReadError(path, "internal: one sampling rate per lead is needed")
    flags = list(flags)

    found: dict[str, np.ndarray] = {}
    found_fs: dict[str, float] = {}
    ignored: list[str] = []
    modified: list[str] = []
    for (label, samples), fs in zip(pairs, rates):
        name = canonical_lead_name(label)
        if name is None and partial_leads:
            name = _MODIFIED_LIMB.get(re.sub(r"[\s._-]+", "", str(label).upper()))
            if name is not None:
                modified.append(str(label).strip())
        if name is None:
            ignored.append(str(label).strip())
            continue
        if name in found:
            raise ECGReadError(path, f"duplicated lead {name} (labels {label!r} and another)")
        arr = np.asarray(samples, dtype=np.float64).reshape(-1)
        found[name] = arr
        found_fs[name] = check_sampling_rate(path, fs)
    if ignored:
        flags.append("extra_leads_ignored:" + ",".join(ignored))
    if modified:
        flags.append("modified_limb_leads:" + ",".join(modified))
    if not found:
        raise ECGReadError(path, "no standard ECG leads in the file" + (f" (found {', '.join(ignored)})" if ignored else ""))
    if all(a.size == 0 for a in found.values()):
        raise ECGReadError(path, "the file holds no samples")

    # One common rate: the most frequent one (ties: the highest).
    rate_values = list(found_fs.values())
    fs = max(set(rate_values), key=lambda r: (rate_values.count(r), r))
    resampled = [n for n, r in found_fs.items() if r != fs]
    for name in resampled:
        found[name] = resample_signal(found[name][None, :], found_fs[name], fs)[0].astype(np.float64)
    if resampled:
        flags.append(f"resampled_leads:{','.join(resampled)}@{fs:g}Hz")

    lengths = {a.size for a in found.values()}
    n = min(lengths)
    if n == 0:
        empty = [k for k, a in found.items() if a.size == 0]
        raise ECGReadError(path, f"lead {empty[0]} holds no samples")
    if len(lengths) > 1:
        flags.append(f"unequal_lead_lengths:truncated_to_{n}")
        found = {k: a[:n] for k, a in found.items()}

    _derive_missing_limb_leads(found)
    missing = [name for name in LEADS if name not in found]
    if missing and not partial_leads:
        raise ECGReadError(path, f"missing lead {missing[0]}")
    if missing:
        flags.append("missing_leads:" + ",".join(missing))
        for name in missing:
            found[name] = np.full(n, np.nan)

    ends = np.array([[found[name][0], found[name][-1]] for name in LEADS])
    if _ends_agree(ends):  # a calibration pulse may sit at an end: look on the float64 stack
        signal, trimmed = trim_calibration_pulse(np.stack([found[name] for name in LEADS]), fs)
        if trimmed:
            flags.append(f"calibration_pulse_removed:{trimmed}_samples")
        signal = signal.astype(np.float32)
    else:  # the usual case: each lead cast straight into the float32 record (no float64 stack)
        signal = np.empty((len(LEADS), n), dtype=np.float32)
        for i, name in enumerate(LEADS):
            signal[i] = found[name]
    # a lead the file lacks is reported once, as missing, not also as NaN samples or flat
    flags.extend(f for f in quality_flags(signal, fs) if f.partition(":")[2] not in missing)
    return ECGRecord(
        signal_mv=signal,
        fs_hz=fs,
        source_path=path_text(path),  # printable, reversible (elvmass.errors.path_text)
        source_format=source_format,
        flags=tuple(dict.fromkeys(flags)),
        **record_fields,
    )


def trim_calibration_pulse(signal: np.ndarray, fs_hz: float, tol_mv: float = CALIBRATION_TOL_MV) -> tuple[np.ndarray, int]:
    """Cut a calibration pulse (and the blank around it) that some carts append or prepend.

    Philips carts store 11 s per lead: the ECG, then a stretch where every lead is 0 and
    a 1 mV square pulse in all 12 leads at once. A real ECG never has all 12 leads equal,
    so the end (or start) stretch where all leads agree within ``tol_mv`` (a couple of
    quantisation steps) and that holds a pulse of at least 0.5 mV lasting 20 ms or more
    is removed. Returns the signal and the number of samples cut (0 when none).

    >>> import numpy as np
    >>> sig = np.vstack([np.sin(np.arange(1000) / 7.0 + k) for k in range(12)])
    >>> sig[:, 900:] = 0.0; sig[:, 940:990] = 1.0
    >>> out, cut = trim_calibration_pulse(sig, 500.0)
    >>> out.shape, cut
    ((12, 900), 100)
    """
    if not _ends_agree(signal[:, [0, -1]], tol_mv):  # the usual case: no stretch where all leads agree
        return signal, 0
    agree = np.ptp(signal, axis=0) <= tol_mv
    min_pulse = max(1, int(round(0.02 * fs_hz)))
    start, end = 0, signal.shape[1]
    if agree[-1]:
        disagree = np.flatnonzero(~agree)
        idx = int(disagree[-1]) + 1 if disagree.size else 0
        if _has_pulse(signal[0, idx:], min_pulse):
            end = idx
    if agree[0]:
        disagree = np.flatnonzero(~agree[:end])
        idx = int(disagree[0]) if disagree.size else end
        if _has_pulse(signal[0, :idx], min_pulse):
            start = idx
    if end - start == signal.shape[1] or end <= start:
        return signal, 0
    return signal[:, start:end], signal.shape[1] - (end - start)


def _ends_agree(ends: np.ndarray, tol_mv: float = CALIBRATION_TOL_MV) -> bool:
    """True when all leads agree within ``tol_mv`` at the first or the last sample (``ends``: (leads, 2)),
    the only records :func:`trim_calibration_pulse` can cut anything from."""
    return bool((np.ptp(ends, axis=0) <= tol_mv).any())


def _has_pulse(segment: np.ndarray, min_len: int) -> bool:
    high = np.abs(segment) >= 0.5
    if high.sum() < min_len:
        return False
    # longest run of consecutive high samples
    padded = np.concatenate([[0], high.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return bool(edges.size) and int((edges[1::2] - edges[::2]).max()) >= min_len


def _derive_missing_limb_leads(found: dict[str, np.ndarray]) -> None:
    """Fill in I/II/III from the other two (Einthoven) and aVR/aVL/aVF from I and II."""
    have = {k for k in ("I", "II", "III") if k in found}
    if have == {"II", "III"}:
        found["I"] = found["II"] - found["III"]
    elif have == {"I", "III"}:
        found["II"] = found["I"] + found["III"]
    if "I" in found and "II" in found and not all(k in found for k in ("III", "aVR", "aVL", "aVF")):
        derived = derive_limb_leads(found["I"], found["II"])
        for name, values in derived.items():
            found.setdefault(name, values)


def _percentiles_1_99(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.percentile(rows, [1, 99], axis=1)`` for finite rows, to the last bit, partitioning each row in
    place along its contiguous axis (numpy moves the axis first, which makes it twice as slow).
    ``rows`` must be a scratch copy."""
    n = rows.shape[1]
    virtual = (n - 1) * np.true_divide(np.asarray([1, 99]), 100)
    prev = np.floor(virtual).astype(np.intp)
    nxt = np.minimum(prev + 1, n - 1)
    above = virtual >= n - 1
    prev[above] = nxt[above] = n - 1
    gamma = (virtual - prev)[:, None]
    # partition only at the upper neighbours; the order statistic just below one is then the largest
    # value of the stretch between it and the previous partition point
    kth = np.unique(nxt)
    rows.partition(kth, axis=1)
    b = rows[:, nxt].T  # (2, rows)
    a = np.empty_like(b)
    for j in range(2):
        if prev[j] in kth:  # itself a partition point
            a[j] = rows[:, prev[j]]
        else:
            below = kth[kth < nxt[j]]
            start = int(below[-1]) + 1 if below.size else 0
            a[j] = rows[:, start : nxt[j]].max(axis=1)
    diff = b - a
    out = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5, casting="unsafe")
    return out[0], out[1]


def _amplitude_surely_plausible(signal_mv: np.ndarray, ptp: np.ndarray, live: np.ndarray) -> bool:
    """True when cheap bounds prove that the median 1-99 % range of the live (finite, not flat) leads lies
    within the plausible limits, so the exact percentiles need not be computed.

    Upper bound of a lead's range: its peak-to-peak. Lower bound: if at least as many samples as the 1st
    percentile's upper neighbour index (+1) lie 10.05 uV or more below the lead's mean, and as many lie
    that far above it, the 1st percentile is below and the 99th above, so the range exceeds 20.1 uV.
    The samples are counted in every 4th sample only: a count there can only be smaller than in all
    samples, so the bound holds (and a record where it fails falls back to the exact percentiles)."""
    n = signal_mv.shape[1]
    if n < 2 or not live.any():
        return False
    if median_1d(ptp[live]) > MAX_PLAUSIBLE_PTP_MV * (1 - 1e-6):
        return False
    x = (signal_mv if live.all() else signal_mv[live])[:, ::4]
    virtual = (n - 1) * np.true_divide(np.asarray([1, 99]), 100)
    need_low = int(np.floor(virtual[0])) + 2  # samples <= t_lo that put order statistic floor(v)+1 below t_lo
    need_high = n - int(np.floor(virtual[1]))  # samples >= t_hi that put order statistic floor(v) above t_hi
    half = 0.5 * MIN_PLAUSIBLE_PTP_MV + 5e-5
    mean = x.mean(axis=1, keepdims=True)
    low = np.count_nonzero(x <= mean - half, axis=1) >= need_low
    high = np.count_nonzero(x >= mean + half, axis=1) >= need_high
    return 2 * int(np.count_nonzero(low & high)) > x.shape[0]  # most leads (so the median) exceed 20.1 uV


def quality_flags(signal_mv: np.ndarray, fs_hz: float) -> list[str]:
    """Quality flags for a (12, n) signal: NaN samples, flat leads, implausible scale, short record.

    >>> import numpy as np
    >>> sig = np.random.default_rng(0).normal(0, 0.3, (12, 5000)).astype(np.float32)
    >>> sig[8] = 0.0
    >>> quality_flags(sig, 500.0)
    ['flat_lead:V3']
    """
    flags: list[str] = []
    x = signal_mv
    n = x.shape[1]
    # a lead is whole when its sum is finite (any NaN or infinite sample makes it NaN or infinite)
    whole = np.isfinite(x.sum(axis=1, dtype=np.float64)) if n else np.ones(x.shape[0], dtype=bool)
    for i, name in enumerate(LEADS):
        if not whole[i]:
            flags.append(f"nan_samples:{name}")
    # peak-to-peak of every lead (finite samples only), then the 1-99 % range of the leads that are not flat
    ptp = np.full(len(LEADS), np.nan)
    if n and whole.all():
        ptp[:] = np.ptp(x, axis=1)
    elif n and whole.any():
        ptp[whole] = np.ptp(x[whole], axis=1)
    for i in np.flatnonzero(~whole):
        lead = x[i][np.isfinite(x[i])]
        if lead.size:
            ptp[i] = np.ptp(lead)
    ranges = []
    known = np.isfinite(ptp)
    for i in np.flatnonzero(known & (ptp < FLAT_PTP_MV)):
        flags.append(f"flat_lead:{LEADS[i]}")
    live = known & (ptp >= FLAT_PTP_MV)
    if whole.all() and _amplitude_surely_plausible(x, ptp, live):
        live[:] = False  # the exact 1-99 % ranges are only needed to report an implausible amplitude
    if (live & whole).any():
        lo, hi = _percentiles_1_99(x[live & whole])
        ranges += [float(v) for v in hi - lo]
    for i in np.flatnonzero(live & ~whole):
        lo, hi = np.percentile(x[i][np.isfinite(x[i])], [1, 99])
        ranges.append(float(hi - lo))
    if ranges:
        typical = float(np.median(ranges))
        if typical > MAX_PLAUSIBLE_PTP_MV or typical < MIN_PLAUSIBLE_PTP_MV:
            flags.append(f"implausible_amplitude:{typical:.3g}mV")
    duration = signal_mv.shape[1] / fs_hz
    if duration < MIN_DURATION_S:
        flags.append(f"short_record:{duration:.2f}s")
    return flags
