"""A local Dask cluster for elvmass's jobs (trainings, archive scoring), without Dask's malloc setting.

Dask's nanny starts every worker process with ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``) so that idle workers hand freed memory back to the
operating system. Setting any glibc malloc threshold also turns off glibc's dynamic mmap threshold,
so every tensor or array above 128 kB is mapped, zero-filled page by page and unmapped again.
For our workloads, which allocate and free the same few megabytes thousands of times, that costs
page faults and system time. On this 2-core machine, six epochs of one eLVMass-Net training on
1,050 beats took 17x the minor page faults and 2.5-3.5 s more system time, and two trainings side
by side took 14.2 s instead of 10.2 s.

:func:`start_local_cluster` starts ``n_workers`` one-thread worker processes with Dask's
pre-spawn environment minus that variable (the thread caps ``OMP_NUM_THREADS=1`` etc. are kept),
and leaves the variable out of this process's environment too, where the nanny would otherwise
write it. A cluster at an address (``--scheduler``) is the user's own and is not touched.

With ``preload`` (archive scoring: :data:`elvmass.archive.WORKER_PRELOAD`) the workers are forked from a
multiprocessing *forkserver* that imported those modules once, with the same environment, instead of
being spawned as fresh interpreters that each import them: on this 2-core machine two workers ready to
score (torch, ``scipy.signal``, numba's kernels loaded) in 2.7 s instead of 2.9 s, and the cluster closed
in 0.04 s instead of 0.9 s (a forked worker exits without tearing its interpreter down). The forkserver
serves this process from then on; on a platform without one the workers are spawned as before.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

#: the malloc variables Dask's nanny sets for its workers, left out here (see the module docstring)
MALLOC_VARIABLES = ("MALLOC_TRIM_THRESHOLD_",)


def worker_environment() -> dict:
    """Dask's ``distributed.nanny.pre-spawn-environ`` without :data:`MALLOC_VARIABLES`.

    >>> env = worker_environment()
    >>> "MALLOC_TRIM_THRESHOLD_" in env, env.get("OMP_NUM_THREADS")
    (False, 1)
    """
    import dask

    key = "distributed.nanny.pre-spawn-environ"
    if "distributed" in sys.modules:  # its defaults are registered: the config holds the merged value
        env = dict(dask.config.get(key, default={}) or {})
    else:  # distributed's defaults under the user's own settings, as importing it would merge them, without
        env = {**_distributed_default(key), **(dask.config.get(key, default={}) or {})}  # its ~0.4 s import
    return {k: v for k, v in env.items() if k not in MALLOC_VARIABLES}


def _distributed_default(key: str) -> dict:
    """``key``'s value in distributed's own ``distributed.yaml`` (the defaults its import registers)."""
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("distributed")
    path = os.path.join(os.path.dirname(spec.origin), "distributed.yaml")
    with open(path, encoding="utf-8") as fh:
        value = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    for part in key.split("."):
        value = (value or {}).get(part, {})
    return dict(value or {})


def start_local_cluster(n_workers: int, *, dashboard_address: str | None = None, preload: tuple[str, ...] = ()):
    """A ``LocalCluster`` of ``n_workers`` processes with one thread each and the environment of
    :func:`worker_environment` (forked from a forkserver that imported ``preload``, see the module
    docstring); the caller closes it."""
    import dask
    from dask.distributed import LocalCluster

    env = worker_environment()
    saved = {k: os.environ[k] for k in MALLOC_VARIABLES if k in os.environ}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
        for k in saved:  # an earlier cluster in this process left it here; the workers must not inherit it
            del os.environ[k]
        try:
            method = "spawn"
            if preload and prepare_local_workers(preload, env):
                method = "forkserver"
            with dask.config.set({"distributed.worker.multiprocessing-method": method}):
                return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                    dashboard_address=dashboard_address, silence_logs=40)
        finally:
            os.environ.update(saved)


def prepare_local_workers(preload: tuple[str, ...], env: dict | None = None) -> bool:
    """Start this process's forkserver (once) importing ``preload``, and return at once (False where the
    platform has none). Called early (:func:`elvmass.archive.score_archive` does it before walking the
    archive), the server's imports run on the other core while this process gets on with its own work.

    The server starts with ``env`` (default :func:`worker_environment`) set: the variables Dask's nanny
    would set before spawning a worker (thread caps) must be in place before the server imports numpy
    and torch, since the workers inherit the server's state, not this process's."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    _start_forkserver(("distributed", *preload), worker_environment() if env is None else env)
    return True


def _start_forkserver(preload: tuple[str, ...], env: dict) -> None:
    from multiprocessing import forkserver

    # once running, the server keeps its first preload (later calls only check it is alive)
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(preload))
    before = {k: os.environ.get(k) for k in (*env, *MALLOC_VARIABLES)}
    for k in MALLOC_VARIABLES:
        os.environ.pop(k, None)
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        forkserver.ensure_running()
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


__all__ = ["MALLOC_VARIABLES", "prepare_local_workers", "start_local_cluster", "worker_environment"]
