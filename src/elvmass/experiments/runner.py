"""Task runners for the protocol's (model, fold) tasks: serial, Dask, and a resumable on-disk store.

A runner is ``runner(data, tasks, *, device, progress, on_result) -> list[FoldResult]``
(:func:`elvmass.experiments.protocol.run_protocol` calls it). Every task is seeded by its model and
fold (:class:`~elvmass.experiments.protocol.FoldTask`), so any runner gives the same numbers.

=========================  ======================================================================
runner                     what it does
=========================  ======================================================================
``serial_runner``          one task after another in this process (protocol module)
:func:`dask_runner`        tasks on a Dask cluster: a local one (``n_workers`` processes, one task
                           each at a time) or an existing one (``scheduler="tcp://HOST:PORT"``); the
                           specs' shared inputs (:meth:`ModelSpec.prepare`, e.g. ECG-AI's profiles) are
                           computed on the cluster in chunks first, then the cohort's model inputs are
                           scattered to the workers once
:func:`cached_runner`      wraps another runner with a :class:`TaskStore`: finished tasks are read
                           back from disk (by :attr:`FoldTask.key`), only the others are run, each
                           result saved atomically as soon as it arrives (an interrupted run resumes);
                           a task that keeps its model (:attr:`FoldTask.keep_model`) stores its
                           weights as ``<key>.safetensors`` and is reused only with them
=========================  ======================================================================

Threads: one training uses ``TrainConfig.num_threads`` torch threads (set inside the fit loop, in
the worker too), so :func:`default_workers` is the machine's cores divided by that.

    >>> import numpy as np, tempfile
    >>> from elvmass.evaluate.splits import Split
    >>> from elvmass.experiments.protocol import FoldResult, FoldTask, ModelEntry
    >>> from elvmass.models.demographics import DemographicsSpec
    >>> task = FoldTask(ModelEntry(DemographicsSpec()), Split(0, np.array([1, 2]), np.array([3]), np.array([0])), 5)
    >>> store = TaskStore(tempfile.mkdtemp())
    >>> store.save(task, FoldResult("demographics", 0, np.array([0]), np.array([123.456789])))
    >>> store.load(task).lvm_g.tolist(), store.has(task)
    ([123.456789], True)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from elvmass.atomic import atomic_write_text
from elvmass.experiments.protocol import FoldResult, FoldTask, run_fold_task, serial_runner
from elvmass.jsonable import to_jsonable


class TaskStore:
    """Finished task results on disk, one JSON file per :attr:`FoldTask.key` (floats round-trip exactly)."""

    def __init__(self, folder) -> None:
        self.folder = Path(folder)

    def path(self, task: FoldTask) -> Path:
        return self.folder / f"{task.key}.json"

    def has(self, task: FoldTask) -> bool:
        return self.path(task).is_file()

    def weights_path(self, task: FoldTask) -> Path:
        return self.folder / f"{task.key}.safetensors"

    def save(self, task: FoldTask, res: FoldResult) -> None:
        """The result as ``<key>.json``; a kept model's weights first as ``<key>.safetensors`` (its meta in
        the JSON), so a JSON on disk always has its weights beside it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {"key": task.key, "name": res.name, "fold": int(res.fold),
                   "test_rows": np.asarray(res.test_rows, dtype=int).tolist(),
                   "lvm_g": [float(v) for v in np.asarray(res.lvm_g, dtype=float)],
                   "history": to_jsonable(res.history), "info": to_jsonable(res.info),
                   "elapsed_s": float(res.elapsed_s)}
        if res.state is not None:
            from safetensors.numpy import save_file

            from elvmass.atomic import atomic_write

            arrays, meta = res.state
            atomic_write(self.weights_path(task),
                         lambda tmp: save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp)))
            payload["state_meta"] = to_jsonable(meta)
        atomic_write_text(self.path(task), json.dumps(payload))

    def load(self, task: FoldTask) -> FoldResult | None:
        """The stored result, or None when absent or unreadable, or when the task keeps its model and
        no weights were stored with it (then the task runs again)."""
        from safetensors import SafetensorError

        try:
            d = json.loads(self.path(task).read_text())
            if d.get("key") != task.key or not np.array_equal(d["test_rows"], task.split.test):
                return None
            state = None
            if task.keep_model:
                if "state_meta" not in d or not self.weights_path(task).is_file():
                    return None
                from safetensors.numpy import load_file

                state = (load_file(str(self.weights_path(task))), d["state_meta"])
            return FoldResult(d["name"], int(d["fold"]), np.asarray(d["test_rows"], dtype=int),
                              np.asarray(d["lvm_g"], dtype=float), list(d.get("history", [])), dict(d.get("info", {})),
                              float(d.get("elapsed_s", 0.0)), state)
        except (OSError, ValueError, KeyError, TypeError, SafetensorError):  # a truncated weights file too
            return None


def cached_runner(store: TaskStore, inner=None, *, log: Callable[[str], None] | None = None,
                  record: list | None = None):
    """A runner that reuses finished tasks from ``store`` and runs the rest with ``inner`` (serial
    by default), saving each result as it arrives. ``record`` (a list) receives one dict per task:
    key, model, fold, elapsed_s and whether it was ``reused``."""
    inner = inner or serial_runner

    def run(data, tasks: Sequence[FoldTask], *, device: str = "cpu", progress: bool = False, on_result=None):
        done: dict[str, FoldResult] = {}
        for t in tasks:
            r = store.load(t) if store.has(t) else None
            if r is not None:
                done[t.key] = r
        todo = [t for t in tasks if t.key not in done]
        if log is not None:
            log(f"{len(tasks)} (model, fold) tasks: {len(done)} finished before (reused from {store.folder}), "
                f"{len(todo)} to run")
        new: dict[str, FoldResult] = {}

        def saved(t, r):
            store.save(t, r)
            new[t.key] = r
            if on_result is not None:
                on_result(t, r)

        if todo:
            inner(data, todo, device=device, progress=progress, on_result=saved)
        out = []
        for t in tasks:
            r = done.get(t.key) or new[t.key]
            if record is not None:
                record.append({"key": t.key, "model": t.entry.name, "fold": int(t.split.fold),
                               "elapsed_s": round(float(r.elapsed_s), 2), "reused": t.key in done})
            out.append(r)
        return out

    return run


def threads_per_training(tasks: Sequence[FoldTask]) -> int:
    """The torch threads one training of these tasks uses (the largest ``train.num_threads``; 1 if none)."""
    n = [int(getattr(getattr(t.entry.spec, "train", None), "num_threads", 1) or 1) for t in tasks]
    return max(n or [1])


def default_workers(threads: int = 2) -> int:
    """Local workers that fit this machine: usable cores divided by the threads of one training."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, threads))


def shippable(data, tasks: Sequence[FoldTask]):
    """A copy of ``data`` to send to workers: every view the tasks need computed once here, the bulky
    per-record analyses left out when the worker can reload them from the on-disk signal cache (a
    family that asks for analyses, e.g. voltage criteria, gets them there through the same cache)."""
    from elvmass.features import CohortData

    for t in tasks:
        for sig in t.entry.spec.signals:
            data.views(sig)
    out = CohortData(data.manifest, data.measured, list(data.flags), list(data.dropped))
    out._views = dict(data._views)
    out._derived = dict(data._derived)
    if data._provider is not None:
        out._provider = data._provider
    else:  # in-memory rows (no files behind them): the analyses travel along
        out._analyses = dict(data._analyses)
    return out


def prepare_specs(data, tasks: Sequence[FoldTask], map_fn=map) -> list[str]:
    """Each distinct spec's shared inputs (:meth:`ModelSpec.prepare`) computed into ``data`` once, before
    the tasks are sent out (so no worker computes them again for itself). Returns the names of the specs
    that mapped any work."""
    seen, mapped = set(), []
    for t in tasks:
        spec = t.entry.spec
        if id(spec) in seen:
            continue
        seen.add(id(spec))
        calls = []

        def counting_map(fn, chunks, calls=calls):
            calls.append(1)
            return map_fn(fn, chunks)

        spec.prepare(data, counting_map)
        if calls:
            mapped.append(spec.name)
    return mapped


def _cluster_map(client):
    def map_on_cluster(fn, chunks):
        # the chunks go to the workers as data (scatter), not inside the task graph
        return client.gather(client.map(fn, client.scatter(list(chunks)), pure=False))

    return map_on_cluster


def _dask_task(data, task: FoldTask, device: str) -> FoldResult:
    return run_fold_task(data, task, device=device, progress=False)


def dask_runner(*, n_workers: int | None = None, scheduler: str | None = None, log: Callable[[str], None] | None = None):
    """A runner on Dask: an existing cluster at ``scheduler`` (``tcp://HOST:PORT``), else a local
    cluster of ``n_workers`` processes (default :func:`default_workers`), each running one task at a
    time. The data is scattered to the workers once; results come back as they finish (``on_result``
    is called for each, in finishing order; the protocol places them by model and fold)."""

    def run(data, tasks: Sequence[FoldTask], *, device: str = "cpu", progress: bool = False, on_result=None):
        from dask.distributed import Client, as_completed

        from elvmass.local_cluster import start_local_cluster

        if not tasks:
            return []
        t0 = time.perf_counter()
        cluster = None
        if scheduler:
            client = Client(scheduler)
        else:
            n = n_workers or default_workers(threads_per_training(tasks))
            # one task slot per worker process; torch's own threads are set by the fit loop
            cluster = start_local_cluster(n, dashboard_address=":0")
            client = Client(cluster)
        try:
            if log is not None:
                where = scheduler or f"local cluster of {len(client.scheduler_info()['workers'])} worker(s)"
                log(f"dask: {len(tasks)} tasks on {where} (started in {time.perf_counter() - t0:.0f} s)")
            t1 = time.perf_counter()
            prepared = prepare_specs(data, tasks, _cluster_map(client))
            if log is not None and prepared:
                log(f"dask: shared inputs of {', '.join(prepared)} computed on the cluster "
                    f"({time.perf_counter() - t1:.0f} s)")
            shipped = client.scatter(shippable(data, tasks), broadcast=True)
            futures = {client.submit(_dask_task, shipped, t, device, key=f"fold-task-{t.key}", pure=False): t
                       for t in tasks}
            results: dict[str, FoldResult] = {}
            for fut in as_completed(futures):
                t = futures[fut]
                r = fut.result()
                results[t.key] = r
                if on_result is not None:
                    on_result(t, r)
            return [results[t.key] for t in tasks]
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    return run
