"""ECG-input mutants of eLVMass-Net as a pytest plugin (no source change).

    PYTHONPATH=src:tests python -m pytest -p ecg_mutants --ecg-mutant=zero tests/test_learning.py

``--ecg-mutant`` replaces :meth:`elvmass.models.elvmassnet.ElvmassNet.forward` for the whole session by a
wrapper that breaks the ECG tensor before the network sees it, in training and in prediction alike:

* ``zero``: the ECG is all zeros (an ECG-blind model);
* ``shuffle``: every patient of a batch gets another patient's ECG of the same batch (a derangement,
  so no one keeps their own);
* ``leads``: the 12 leads are put in a fresh random order at each call, no lead keeping its place (lead
  identity lost, as with a reader that scrambles the lead order).

Demographics and ECG parameters go through unchanged. The permutations come from a torch generator seeded
once, so a mutant run is reproducible. Without the option the plugin does nothing. A suite that notices a
model ignoring its ECG must fail under each mutant (``tests/test_learning.py`` does).
"""

from __future__ import annotations

import pytest

MUTANTS = ("zero", "shuffle", "leads")


def pytest_addoption(parser):
    parser.addoption("--ecg-mutant", choices=MUTANTS, default=None,
                     help="break eLVMass-Net's ECG input: zero, shuffle (across patients of a batch), leads (permuted)")


def _derangement(n: int, gen):
    """Index map i -> j != i (for n >= 2): a random cycle through all n positions."""
    import torch

    perm = torch.randperm(n, generator=gen)
    out = torch.empty(n, dtype=torch.long)
    out[perm] = perm.roll(1)
    return out


def mutate(ecg, kind: str, gen):
    """The mutated ECG: a (B, 12, L) tensor, or a list of per-group (B, n_g, L) tensors."""
    import torch

    if isinstance(ecg, (list, tuple)):
        sizes = [g.shape[1] for g in ecg]
        return list(torch.split(mutate(torch.cat(list(ecg), dim=1), kind, gen), sizes, dim=1))
    if kind == "zero":
        return torch.zeros_like(ecg)
    if kind == "shuffle":
        return ecg[_derangement(ecg.shape[0], gen).to(ecg.device)] if ecg.shape[0] > 1 else torch.zeros_like(ecg)
    if kind == "leads":
        return ecg[:, _derangement(ecg.shape[1], gen).to(ecg.device)]
    raise ValueError(kind)


def pytest_configure(config):
    kind = config.getoption("--ecg-mutant")
    if not kind:
        return
    import torch

    from elvmass.models.elvmassnet import ElvmassNet

    original = ElvmassNet.forward
    gen = torch.Generator().manual_seed(0)

    def forward(self, ecg, demographics=None, params=None):
        return original(self, mutate(ecg, kind, gen), demographics, params)

    ElvmassNet.forward = forward
    config._ecg_mutant_restore = (ElvmassNet, original)


def pytest_unconfigure(config):
    restore = getattr(config, "_ecg_mutant_restore", None)
    if restore:
        cls, original = restore
        cls.forward = original


def pytest_report_header(config):
    kind = config.getoption("--ecg-mutant")
    return f"ecg mutant: {kind}" if kind else None


@pytest.fixture
def ecg_mutant(request):
    """The active ECG mutant's name, or None."""
    return request.config.getoption("--ecg-mutant")
