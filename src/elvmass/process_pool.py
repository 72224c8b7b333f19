"""The process pool that elvmass's per-file and per-patient jobs share (signal cache, cohort build, synth).

``fork`` where the platform has it: the workers run NumPy/SciPy code only, re-import nothing, and
scripts without a ``__main__`` guard keep working. Results are the same for any number of workers,
because each job depends only on its own inputs.

    >>> default_workers() >= 1
    True
    >>> with fork_pool(2) as pool:
    ...     list(pool.map(abs, [-1, 2, -3]))
    [1, 2, 3]
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor


def default_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def fork_pool(workers: int) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` processes, forked where the platform can."""
    import multiprocessing as mp

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    return ProcessPoolExecutor(workers, mp_context=ctx)


__all__ = ["default_workers", "fork_pool"]
