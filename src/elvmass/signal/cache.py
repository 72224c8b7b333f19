"""Preprocess a cohort once: each ECG's analysis and view is cached on disk, keyed by the file's content
and the signal config, so a study does not redo it on every run.

One ``<key>.npz`` per ECG (arrays plus a JSON header, loaded without pickle), written atomically. A
changed file, a changed config or a new pipeline version gives a new key; stale entries are simply never
read again.

    >>> from elvmass.signal import SignalConfig, preprocess_cohort        # doctest: +SKIP
    >>> results = preprocess_cohort(paths, SignalConfig(), ".elvmass-cache/signal")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from elvmass.atomic import atomic_write
from elvmass.errors import ECGReadError
from elvmass.io import WFDB_SUFFIXES as _WFDB_PARTS
from elvmass.jsonable import to_jsonable
from elvmass.process_pool import default_workers, fork_pool
from elvmass.signal.analysis import ECGAnalysis, analyze_ecg
from elvmass.signal.config import SignalConfig

#: bump when the pipeline's numbers change, so old cache entries are not reused.
PIPELINE_VERSION = "signal-9"  # 2: T-wave detections dropped (Pan-Tompkins rule); 3: P on/off, T end by trapezium, RR-bounded searches, mean-RR HR; 4: rate-independent noise and pacing checks; 5: QRS offset after a terminal R' (bundle branch block); 6: QRS onset per lead (a low quantile of the clearly deflecting leads); 7: pacing spikes must lead beats (not sit on R apexes); 8: QRS onset = weighted mean of the slope onset and the magnitude knee, pacing stimuli > 0.25 mV at a fixed lead 30-400 ms before R; 9: delineation and measurements at 500 Hz whatever the record's rate, fiducials from the window's actual first sample, the configured mains notch left out of the noise check, mains_interference flag


def _content_files(path: Path) -> list[Path]:
    if path.is_file() and path.suffix.lower() not in _WFDB_PARTS:
        return [path]
    base = path.with_suffix("") if path.suffix.lower() in _WFDB_PARTS else path
    parts = [base.with_name(base.name + ext) for ext in _WFDB_PARTS]
    found = [p for p in parts if p.is_file()]
    return found or ([path] if path.is_file() else [])


def cache_key(path, config: SignalConfig) -> str:
    """sha256 over the file's bytes (all parts of a WFDB record), the config and the pipeline version."""
    files = _content_files(Path(path))
    if not files:
        raise ECGReadError(path, "file not found")
    h = hashlib.sha256()
    h.update(PIPELINE_VERSION.encode())
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for f in files:
        h.update(f.suffix.lower().encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:32]


def _none_to_nan(d: dict, keys_bool_suffix=("_positive", "_probable")) -> dict:
    return {k: (math.nan if v is None and not k.endswith(keys_bool_suffix) else v) for k, v in d.items()}


def save_analysis(analysis: ECGAnalysis, file: Path) -> None:
    """Write one analysis atomically as .npz (arrays + JSON header)."""
    header = {
        "beat_start_s": analysis.beat_start_s,
        "beat_end_s": analysis.beat_end_s,
        "flags": list(analysis.flags),
        "fiducials_ms": analysis.fiducials_ms,
        "measured": analysis.measured,
        "criteria": analysis.criteria,
        "fs_hz": analysis.fs_hz,
        "beat_fs_hz": analysis.beat_fs_hz,
        "config": analysis.config.to_dict(),
        "source_path": analysis.source_path,
        "sex": analysis.sex,
        "device": analysis.device,
    }
    arrays = {
        "header": np.array(json.dumps(to_jsonable(header))),
        "r_peaks_s": np.asarray(analysis.r_peaks_s, dtype=np.float64),
        "view": np.asarray(analysis.view, dtype=np.float32),
    }
    if analysis.beat_mv is not None:
        arrays["beat_mv"] = np.asarray(analysis.beat_mv, dtype=np.float32)
    atomic_write(file, lambda tmp: np.savez(tmp, **arrays))


def load_analysis(file: Path) -> ECGAnalysis:
    with np.load(file, allow_pickle=False) as z:
        header = json.loads(str(z["header"]))
        beat = z["beat_mv"] if "beat_mv" in z.files else None
        return ECGAnalysis(
            r_peaks_s=z["r_peaks_s"],
            beat_start_s=math.nan if header["beat_start_s"] is None else header["beat_start_s"],
            beat_end_s=math.nan if header["beat_end_s"] is None else header["beat_end_s"],
            flags=tuple(header["flags"]),
            fiducials_ms=_none_to_nan(header["fiducials_ms"]),
            measured=_none_to_nan(header["measured"]),
            criteria=_none_to_nan(header["criteria"]),
            view=z["view"],
            fs_hz=header["fs_hz"],
            beat_mv=beat,
            beat_fs_hz=header.get("beat_fs_hz", header["fs_hz"]),
            config=SignalConfig.from_dict(header["config"]),
            source_path=header["source_path"],
            sex=header["sex"],
            device=header["device"],
        )


def _cached(file: Path, source) -> ECGAnalysis | None:
    if not file.is_file():
        return None
    try:
        result = load_analysis(file)
    except (OSError, ValueError, KeyError):
        return None  # a damaged entry is recomputed
    result.source_path = str(source)
    return result


def _analyse_and_store(path, config: SignalConfig, file: Path):
    """Worker: analyse one ECG and write its cache entry. Returns the analysis, or
    ``(path, problem)`` for an unreadable file (ECGReadError does not survive pickling)."""
    from elvmass import read_ecg

    try:
        result = analyze_ecg(read_ecg(path), config)
    except ECGReadError as exc:
        return (exc.path, exc.problem)
    result.source_path = str(path)
    save_analysis(result, file)
    return result


#: below this many files to compute, a process pool costs more than it saves
_MIN_PARALLEL = 8


def preprocess_cohort(
    paths: Iterable,
    config: SignalConfig = SignalConfig(),
    cache_dir=".elvmass-cache/signal",
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> list[ECGAnalysis | ECGReadError]:
    """Analyse every ECG file (``analyze_ecg``), reusing cached results; one entry per path, in order.

    A file that cannot be read gives its :class:`~elvmass.errors.ECGReadError` in its place (never
    dropped); a readable but flagged ECG gives its analysis with ``flags`` set. ``progress(i, n)`` is
    called after each file. With ``config.view == "random_crop"`` the cached crop is the one drawn from
    ``config.seed`` (augmentation during training should crop afresh from ``beat``/record instead).

    Files not yet cached are analysed by ``workers`` processes (default: one per usable CPU core,
    :func:`elvmass.process_pool.default_workers`; 1 = in this process). Each file's analysis depends only on its own
    bytes and the config, so the results are the same for any number of workers.
    """
    paths = list(paths)
    cache = Path(cache_dir)
    n = len(paths)
    out: list[ECGAnalysis | ECGReadError | None] = [None] * n
    todo: list[tuple[int, Path]] = []
    done = 0
    for i, p in enumerate(paths):
        try:
            key = cache_key(p, config)
        except ECGReadError as exc:
            out[i] = exc
        else:
            file = cache / key[:2] / f"{key}.npz"
            out[i] = _cached(file, p)
            if out[i] is None:
                todo.append((i, file))
                continue
        done += 1
        if progress is not None:
            progress(done, n)
    n_workers = default_workers() if workers is None else max(1, int(workers))
    n_workers = min(n_workers, len(todo))

    def finish(i: int, res) -> None:
        nonlocal done
        out[i] = ECGReadError(*res) if isinstance(res, tuple) else res
        done += 1
        if progress is not None:
            progress(done, n)

    if n_workers <= 1 or len(todo) < _MIN_PARALLEL:
        for i, file in todo:
            finish(i, _analyse_and_store(paths[i], config, file))
        return out
    from concurrent.futures import as_completed

    with fork_pool(n_workers) as pool:
        futures = {pool.submit(_analyse_and_store, paths[i], config, file): i for i, file in todo}
        for fut in as_completed(futures):
            finish(futures[fut], fut.result())
    return out
