"""Scoring a whole ECG archive on Dask: one Parquet row per file, written atomically chunk by chunk.

========================  ==========================================================================
what                      how
========================  ==========================================================================
files                     :func:`elvmass.io.find_ecg_files` on the folder tree (XML, DICOM, WFDB by .hea)
chunks                    ``chunk_size`` files per Dask task; a task reads, hashes and predicts its files
                          (:func:`elvmass.predict.predict_records`: scalars in NumPy, one model call per
                          model and chunk unless ``max_batch`` caps it)
cluster                   a local one (``workers`` processes, one thread each) unless ``scheduler`` names
                          an existing one (the archive and bundle must be readable by its workers)
output                    ``OUT/part-<run>-<chunk>.parquet``, each written atomically as its chunk
                          finishes: read the whole with :func:`read_scores` (or ``pd.read_parquet(OUT)``)
row                       ``path`` (relative to the archive), ``content_sha256`` (the file, and the .dat
                          of a WFDB record), the prediction fields (``lvm_g``, ``lvmi_g_m2``, ``lvh``,
                          ``model``, ``flags``, inputs used, interval fields when the bundle gives them),
                          ``error`` (one line; the prediction fields are empty) -- a failing file is a row
resume                    files whose content hash and path already have a row are skipped; a known
                          hash at a new path gets a copy of that row, not a second scoring
========================  ==========================================================================

    >>> from elvmass.archive import score_archive     # doctest: +SKIP
    >>> s = score_archive("model/", "archive/", "scores.parquet", workers=2)  # doctest: +SKIP
    >>> s.n_scored, s.n_errors                         # doctest: +SKIP
    (9900, 100)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: Columns every part has, in order, with their Arrow types (so parts of only errors still concatenate).
COLUMNS: dict[str, str] = {
    "path": "string", "content_sha256": "string", "format": "string", "lvm_g": "float64",
    "lvm_g_low": "float64", "lvm_g_high": "float64", "level": "float64", "lvmi_g_m2": "float64",
    "lvh": "bool", "model": "string", "flags": "string", "age_years": "float64", "sex": "string",
    "height_cm": "float64", "weight_kg": "float64", "extra_json": "string", "error": "string",
}
PART_GLOB = "part-*.parquet"
#: modules the local workers are forked with, already imported (see :mod:`elvmass.archive_worker`)
WORKER_PRELOAD = ("elvmass.archive_worker",)


@dataclass
class ArchiveSummary:
    out: Path
    n_files: int
    n_scored: int
    n_errors: int
    n_skipped: int
    n_copied: int
    elapsed_s: float

    @property
    def files_per_s(self) -> float:
        done = self.n_scored + self.n_errors
        return done / self.elapsed_s if self.elapsed_s > 0 else math.nan


def content_hash(path, data: bytes | None = None) -> str:
    """SHA-256 of the file's bytes (a WFDB header together with its .dat signal file); ``data``: a single
    file's bytes, when read already."""
    if data is not None:
        return hashlib.sha256(data).hexdigest()
    path = Path(path)
    h = hashlib.sha256()
    for p in ([path, path.with_suffix(".dat")] if path.suffix.lower() == ".hea" else [path]):
        try:
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except FileNotFoundError:
            h.update(b"<missing>")
    return h.hexdigest()


def _schema():
    import pyarrow as pa

    types = {"string": pa.string(), "float64": pa.float64(), "bool": pa.bool_()}
    return pa.schema([(k, types[v]) for k, v in COLUMNS.items()])


def _row(rel: str, digest: str, result) -> dict:
    from elvmass.errors import ECGReadError

    row = {k: None for k in COLUMNS}
    row["path"], row["content_sha256"] = rel, digest
    if isinstance(result, ECGReadError):
        row["error"] = " ".join(result.problem.split())
        return row
    if isinstance(result, Exception):
        row["error"] = " ".join(f"{type(result).__name__}: {result}".split())
        return row
    d = result.to_dict()
    extra = {}
    for k, v in d.items():
        if k == "path":
            continue
        if k == "flags":
            row["flags"] = ";".join(v)
        elif k in COLUMNS:
            row[k] = v
        else:
            extra[k] = v
    row["extra_json"] = json.dumps(extra, sort_keys=True, default=str) if extra else None
    return row


_BUNDLES: dict = {}


def _worker_bundle(bundle_dir: str):
    """The bundle, loaded (and hash-checked) once per worker process; torch on one thread per worker."""
    key = str(bundle_dir)
    if key not in _BUNDLES:
        import torch

        from elvmass.bundle import load_bundle

        torch.set_num_threads(1)
        _BUNDLES[key] = load_bundle(bundle_dir)
    return _BUNDLES[key]


def _file_bytes(path: Path) -> bytes | None:
    """A single file's bytes within the reader's size limit, or None (a WFDB record of two files, a file
    too large or unreadable: :func:`content_hash` and the reader then see the file themselves)."""
    from elvmass.errors import ECGReadError
    from elvmass.io import WFDB_SUFFIXES, guard

    if path.suffix.lower() in WFDB_SUFFIXES:
        return None
    try:
        return guard.read_limited(path)
    except (ECGReadError, OSError):
        return None


def score_chunk(bundle_dir: str, root: str, rel_paths: list[str], demographics: dict | None = None,
                max_batch: int | None = None) -> pd.DataFrame:
    """Score one chunk of files (paths relative to ``root``): one row per file, errors as rows."""
    from elvmass.io import detect_format
    from elvmass.predict import predict_records

    bundle = _worker_bundle(bundle_dir)
    rootp = Path(root)
    jobs, digests, formats = [], [], []
    for r in rel_paths:
        data = _file_bytes(rootp / r)  # read once: hashed, sniffed and parsed from the same bytes
        digests.append(content_hash(rootp / r, data))
        try:
            formats.append(detect_format(rootp / r, head=data))
        except Exception:  # noqa: BLE001 - the reader gives the error row
            formats.append(None)
        jobs.append({"record": rootp / r, "path": r, "data": data, **(demographics or {})})
    try:
        results = predict_records(bundle, jobs, max_batch=max_batch)
    except Exception as exc:  # noqa: BLE001 - never a stopped job: the whole chunk becomes error rows
        results = [exc] * len(jobs)
    rows = []
    for r, digest, fmt, res in zip(rel_paths, digests, formats, results):
        row = _row(r, digest, res)
        row["format"] = fmt
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def read_scores(out) -> pd.DataFrame:
    """All rows written to ``out`` so far (the last row of a path wins if a changed file was rescored)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(Path(out).glob(PART_GLOB), key=lambda p: p.stat().st_mtime_ns)
    if not parts:
        return pd.DataFrame({k: pd.Series(dtype="object") for k in COLUMNS})
    table = pa.concat_tables([pq.read_table(p, schema=_schema()) for p in parts])
    df = table.to_pandas()
    return df.drop_duplicates("path", keep="last").reset_index(drop=True)


def _write_part(out: Path, name: str, frame: pd.DataFrame) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from elvmass.atomic import atomic_write

    table = pa.Table.from_pandas(frame, schema=_schema(), preserve_index=False)
    return atomic_write(out / name, lambda tmp: pq.write_table(table, tmp))


#: the last ``TAIL_CHUNKS`` full chunks' worth of files go out in chunks a quarter the size, so the workers
#: finish within a small chunk of each other instead of one idling while the other scores a last full one
TAIL_CHUNKS = 4


def split_chunks(files: list, chunk_size: int) -> list[list]:
    """``files`` in order, in chunks of ``chunk_size``, except that the last ``TAIL_CHUNKS * chunk_size``
    files come in chunks of a quarter of it (tasks run in the order they are submitted).

    >>> [len(c) for c in split_chunks(list(range(1030)), 100)]
    [100, 100, 100, 100, 100, 100, 30, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25]
    """
    size = max(1, int(chunk_size))
    small = max(1, size // 4)
    head = max(0, len(files) - TAIL_CHUNKS * size) if small < size else len(files)
    return ([files[i:min(i + size, head)] for i in range(0, head, size)]
            + [files[i:i + small] for i in range(head, len(files), small)])


def score_archive(bundle_dir, archive_dir, out, *, workers: int | None = None, scheduler: str | None = None,
                  resume: bool = False, chunk_size: int = 200, max_batch: int | None = None, demographics: dict | None = None,
                  progress=None) -> ArchiveSummary:
    """Score every ECG file under ``archive_dir`` into the Parquet folder ``out`` (see the module doc).

    ``progress(done, total, files_per_s)`` is called as chunks finish. Without ``resume`` an ``out``
    that already holds parts is refused (it would mix two runs).
    """
    from elvmass.bundle import BundleError, verify_bundle
    from elvmass.errors import ElvmassError
    from elvmass.io import find_ecg_files

    t0 = time.perf_counter()
    bundle_dir, root, out = Path(bundle_dir).resolve(), Path(archive_dir).resolve(), Path(out)
    # a tampered or malformed bundle stops here, with one line, before any cluster starts; the models
    # themselves are built by the workers only (this process never imports torch: ~2.5 s of start-up), and
    # a bundle a worker cannot load stops the run with that worker's one line (BundleError below)
    verify_bundle(bundle_dir)
    if out.exists() and not out.is_dir():
        raise ElvmassError(f"{out}: exists and is not a Parquet folder")
    if out.is_dir() and any(out.glob(PART_GLOB)) and not resume:
        raise ElvmassError(f"{out}: already holds scores; use --resume to continue, or choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    if not scheduler:  # the local workers' imports start now, on the other core, while the archive is walked
        from elvmass.local_cluster import prepare_local_workers

        prepare_local_workers(WORKER_PRELOAD)
    files = [str(p.relative_to(root)) for p in find_ecg_files(root)]
    n_files = len(files)
    todo, n_skipped, n_copied = files, 0, 0
    if resume:
        done = read_scores(out)
        by_path = dict(zip(done["path"], done["content_sha256"]))
        by_hash = {h: row for h, row in zip(done["content_sha256"], done.to_dict("records"))}
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=4) as pool:
            digests = list(pool.map(lambda r: content_hash(root / r), files))
        todo, copies = [], []
        for rel, digest in zip(files, digests):
            if by_path.get(rel) == digest:
                n_skipped += 1
            elif digest in by_hash:
                copies.append({**by_hash[digest], "path": rel})
            else:
                todo.append(rel)
        if copies:
            n_copied = len(copies)
            _write_part(out, f"part-{uuid.uuid4().hex[:8]}-copies.parquet", pd.DataFrame(copies, columns=list(COLUMNS)))
    chunks = split_chunks(todo, chunk_size)
    run = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    n_scored = n_errors = 0
    if chunks:
        from dask.distributed import Client, as_completed

        from elvmass.local_cluster import start_local_cluster

        cluster = None
        if scheduler:
            client = Client(scheduler)
        else:
            n = workers or max(1, min(len(chunks), os.cpu_count() or 1))
            cluster = start_local_cluster(n, preload=WORKER_PRELOAD)
            client = Client(cluster)
        try:
            futures = {client.submit(score_chunk, str(bundle_dir), str(root), c, demographics, max_batch,
                                     pure=False, key=f"elvmass-chunk-{run}-{i}"): i for i, c in enumerate(chunks)}
            done_files = 0
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    frame = fut.result()
                except BundleError:
                    raise  # the same bundle fails every chunk: one line, not an error row per file
                except Exception as exc:  # noqa: BLE001 - a lost worker: the chunk's files are error rows
                    frame = pd.DataFrame([_row(r, content_hash(root / r), exc) for r in chunks[i]], columns=list(COLUMNS))
                _write_part(out, f"part-{run}-{i:05d}.parquet", frame)
                errs = int(frame["error"].notna().sum())
                n_errors += errs
                n_scored += len(frame) - errs
                done_files += len(frame)
                if progress is not None:
                    el = time.perf_counter() - t0
                    progress(done_files, len(todo), done_files / el if el > 0 else 0.0)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return ArchiveSummary(out, n_files, n_scored, n_errors, n_skipped, n_copied, time.perf_counter() - t0)
