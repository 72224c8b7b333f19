"""What an archive-scoring worker needs before its first file, imported once by the forkserver that the
local Dask workers of :func:`elvmass.archive.score_archive` are forked from
(:func:`elvmass.local_cluster.start_local_cluster`, ``preload``).

Importing this module is its whole job: torch, the readers (GE MUSE, WFDB, the XML guard's defusedxml),
the signal chain with its numba kernels compiled or loaded from their cache, bundles and prediction. A
worker forked from a process that did this starts scoring at once, where a spawned one spends ~3 s of
CPU importing the same modules, both workers at the same time on a 2-core machine.

    >>> import elvmass.archive_worker  # doctest: +SKIP
"""

from __future__ import annotations

import defusedxml.ElementTree  # noqa: F401 - the general XML reader
import ecgdatakit.parsing.helpers  # noqa: F401 - lead labels of the fast MUSE reader
import safetensors.numpy  # noqa: F401 - bundle weights
import torch  # noqa: F401 - the models
import wfdb  # noqa: F401 - WFDB records

import elvmass.archive  # noqa: F401
import elvmass.bundle  # noqa: F401
import elvmass.io  # noqa: F401
import elvmass.predict  # noqa: F401
from elvmass.signal.kernels import warm_up

warm_up()
