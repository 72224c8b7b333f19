"""The local Dask cluster starts its workers without Dask's malloc trim setting (see elvmass.local_cluster)."""

from __future__ import annotations

import os

import pytest

from elvmass.local_cluster import start_local_cluster


def _worker_env():
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")


def test_workers_keep_the_thread_caps_but_not_the_malloc_threshold(monkeypatch):
    from dask.distributed import Client

    # as an earlier cluster in this process leaves it (the nanny writes its environment here)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    cluster = start_local_cluster(1)
    try:
        with Client(cluster) as client:
            assert list(client.run(_worker_env).values()) == [(None, "1")]
    finally:
        cluster.close()
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"  # this process's environment is restored


def _worker_state():
    import sys

    return (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS"),
            "elvmass.archive_worker" in sys.modules, "torch" in sys.modules)


def test_archive_workers_are_forked_with_their_imports_done_and_the_same_environment(monkeypatch):
    """Archive scoring's workers come from a forkserver that imported elvmass.archive_worker (torch, the
    readers, the compiled kernels) once; they keep the thread caps and lack the malloc threshold even
    though this process has it set, as spawned workers do."""
    import multiprocessing

    from dask.distributed import Client

    from elvmass.archive import WORKER_PRELOAD

    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover - not on Linux
        return
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    cluster = start_local_cluster(2, preload=WORKER_PRELOAD)
    try:
        with Client(cluster) as client:
            assert list(client.run(_worker_state).values()) == [(None, "1", True, True)] * 2
    finally:
        cluster.close()
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"


@pytest.mark.parametrize("user_env", [None, "{'OMP_NUM_THREADS': 2, 'EXTRA_VAR': 'x'}"])
def test_worker_environment_before_distributed_is_imported_is_the_merged_config(user_env):
    """Read from distributed's yaml before its (slow) import, the environment is the one its import merges,
    a user's own settings (here from a DASK_ variable) over distributed's defaults."""
    import os
    import subprocess
    import sys

    code = ("import sys; from elvmass.local_cluster import worker_environment as w; a = w(); "
            "assert 'distributed' not in sys.modules; import distributed; b = w(); print(repr(a)); "
            "print(repr(b)); sys.exit(a != b)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    if user_env:
        env["DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"] = user_env
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    first = eval(res.stdout.splitlines()[0])  # noqa: S307 - our own repr of a dict
    assert "MALLOC_TRIM_THRESHOLD_" not in first
    assert first["OMP_NUM_THREADS"] == (2 if user_env else 1)
    assert ("EXTRA_VAR" in first) == bool(user_env)
