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
"""

from __future__ import annotations

import os

#: the malloc variables Dask's nanny sets for its workers, left out here (see the module docstring)
MALLOC_VARIABLES = ("MALLOC_TRIM_THRESHOLD_",)


def worker_environment() -> dict:
    """Dask's ``distributed.nanny.pre-spawn-environ`` without :data:`MALLOC_VARIABLES`.

    >>> env = worker_environment()
    >>> "MALLOC_TRIM_THRESHOLD_" in env, env.get("OMP_NUM_THREADS")
    (False, 1)
    """
    import dask
    import distributed  # noqa: F401 - registers the distributed.* config defaults

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    return {k: v for k, v in env.items() if k not in MALLOC_VARIABLES}


def start_local_cluster(n_workers: int, *, dashboard_address: str | None = None):
    """A ``LocalCluster`` of ``n_workers`` processes with one thread each and the environment of
    :func:`worker_environment`; the caller closes it."""
    import dask
    from dask.distributed import LocalCluster

    saved = {k: os.environ[k] for k in MALLOC_VARIABLES if k in os.environ}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environment()}):
        for k in saved:  # an earlier cluster in this process left it here; the workers must not inherit it
            del os.environ[k]
        try:
            return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                dashboard_address=dashboard_address, silence_logs=40)
        finally:
            os.environ.update(saved)


__all__ = ["MALLOC_VARIABLES", "start_local_cluster", "worker_environment"]
