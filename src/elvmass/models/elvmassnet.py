"""eLVMass-Net: grouped TCN encoders for the ECG plus MLPs for demographics and ECG parameters.

The architecture follows Pan et al., "eLVMass-Net", European Heart Journal - Digital Health
(2025), doi:10.1093/ehjdh/ztaf122:

* one TCN encoder per lead group (see :mod:`elvmass.models.tcn`); the group embeddings are
  concatenated and projected to ``ecg_embed_dim``;
* demographics (age, sex, height, weight) through their own small MLP;
* ECG parameters (QRS duration, P / R / T axis) through their own small MLP;
* everything concatenated into an MLP regressor of (normalised) LV mass.

Each part is switched by the config: ``demographic_inputs=()`` drops the demographics branch,
``param_inputs=()`` the parameters branch, giving the paper's input combinations
(:data:`INPUT_SETS`: ECG only, ECG + parameters, ECG + demographics, all).

    >>> import torch
    >>> cfg = ElvmassNetConfig(channels=(8, 8), head_hidden=(16,))
    >>> net = ElvmassNet(cfg)
    >>> x = torch.zeros(4, 12, 225)
    >>> net(x, torch.zeros(4, 4), torch.zeros(4, 4)).shape
    torch.Size([4])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from elvmass.features import DEMOGRAPHIC_INPUTS, PARAM_INPUTS
from elvmass.models.tcn import TCNEncoder


#: The paper's input combinations: name -> (demographic inputs, parameter inputs).
INPUT_SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ecg": ((), ()),
    "ecg+params": ((), PARAM_INPUTS),
    "ecg+demographics": (DEMOGRAPHIC_INPUTS, ()),
    "all": (DEMOGRAPHIC_INPUTS, PARAM_INPUTS),
}

# Electrical grouping used when no grouping is given: limb leads (frontal plane) and
# precordial leads (horizontal plane), indices in the standard lead order.
_DEFAULT_GROUPS: tuple[tuple[int, ...], ...] = ((0, 1, 2, 3, 4, 5), (6, 7, 8, 9, 10, 11))


@dataclass(frozen=True)
class ElvmassNetConfig:
    """Architecture of eLVMass-Net. All sizes are small by default so it trains on a CPU.

    ``lead_groups``: lead indices (standard order) fed to each TCN encoder.
    ``stride``: input averaging factor inside each encoder (1 = use every sample).
    """

    lead_groups: tuple[tuple[int, ...], ...] = _DEFAULT_GROUPS
    channels: tuple[int, ...] = (32, 32, 32, 32)
    kernel_size: int = 5
    dropout: float = 0.1
    weight_norm: bool = False
    stride: int = 1
    ecg_embed_dim: int = 64
    demographic_inputs: tuple[str, ...] = DEMOGRAPHIC_INPUTS
    param_inputs: tuple[str, ...] = PARAM_INPUTS
    scalar_hidden: int = 16
    head_hidden: tuple[int, ...] = (64,)
    head_dropout: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        groups = tuple(tuple(int(i) for i in g) for g in self.lead_groups)
        object.__setattr__(self, "lead_groups", groups)
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "head_hidden", tuple(int(c) for c in self.head_hidden))
        object.__setattr__(self, "demographic_inputs", tuple(self.demographic_inputs))
        object.__setattr__(self, "param_inputs", tuple(self.param_inputs))
        if not groups or any(not g for g in groups):
            raise ValueError("lead_groups must be a non-empty list of non-empty lead index lists")
        if any(i < 0 or i > 11 for g in groups for i in g):
            raise ValueError(f"lead indices must be 0..11 (standard 12-lead order), got {groups}")
        unknown = set(self.demographic_inputs) - set(DEMOGRAPHIC_INPUTS)
        unknown |= set(self.param_inputs) - set(PARAM_INPUTS)
        if unknown:
            raise ValueError(f"unknown scalar inputs {sorted(unknown)}; choose from {DEMOGRAPHIC_INPUTS + PARAM_INPUTS}")

    @classmethod
    def for_inputs(cls, inputs: str, **kw) -> "ElvmassNetConfig":
        """The config for one of the paper's input combinations (see :data:`INPUT_SETS`)."""
        if inputs not in INPUT_SETS:
            raise ValueError(f"inputs must be one of {sorted(INPUT_SETS)}, got {inputs!r}")
        demo, params = INPUT_SETS[inputs]
        return cls(demographic_inputs=demo, param_inputs=params, **kw)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["lead_groups"] = [list(g) for g in self.lead_groups]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ElvmassNetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("channels", "head_hidden", "demographic_inputs", "param_inputs"):
            if k in kw:
                kw[k] = tuple(kw[k])
        if "lead_groups" in kw:
            kw["lead_groups"] = tuple(tuple(g) for g in kw["lead_groups"])
        return cls(**kw)


def _mlp(n_in: int, hidden: tuple[int, ...], n_out: int | None, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU(), nn.Dropout(dropout)]
        n_in = h
    if n_out is not None:
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class ElvmassNet(nn.Module):
    """eLVMass-Net regressor. ``forward(ecg, demographics, params)`` returns (B,) normalised LVM.

    ``ecg`` is either the whole view (B, 12, L), split by ``config.lead_groups`` inside the
    model, or a list with one (B, n_leads_g, L) tensor per group. ``demographics`` and ``params``
    are (B, k) already normalised and imputed (see :mod:`elvmass.features`); pass ``None`` for a
    branch the config does not use.
    """

    def __init__(self, config: ElvmassNetConfig = ElvmassNetConfig()) -> None:
        super().__init__()
        self.config = config
        torch.manual_seed(config.seed)
        self.encoders = nn.ModuleList(
            TCNEncoder(len(g), config.channels, config.kernel_size, config.dropout, config.weight_norm, config.stride)
            for g in config.lead_groups
        )
        for i, g in enumerate(config.lead_groups):
            self.register_buffer(f"group_index_{i}", torch.tensor(g, dtype=torch.long), persistent=False)
        emb = sum(e.out_features for e in self.encoders)
        self.ecg_proj = nn.Sequential(nn.Linear(emb, config.ecg_embed_dim), nn.ReLU())
        n_head = config.ecg_embed_dim
        self.demo_mlp = None
        self.param_mlp = None
        if config.demographic_inputs:
            self.demo_mlp = _mlp(len(config.demographic_inputs), (config.scalar_hidden,), None, 0.0)
            n_head += config.scalar_hidden
        if config.param_inputs:
            self.param_mlp = _mlp(len(config.param_inputs), (config.scalar_hidden,), None, 0.0)
            n_head += config.scalar_hidden
        self.head = _mlp(n_head, config.head_hidden, 1, config.head_dropout)

    def split_groups(self, ecg: torch.Tensor) -> list[torch.Tensor]:
        """(B, 12, L) -> one (B, n_leads_g, L) tensor per lead group."""
        return [ecg.index_select(1, getattr(self, f"group_index_{i}")) for i in range(len(self.encoders))]

    def forward(
        self,
        ecg: torch.Tensor | list[torch.Tensor],
        demographics: torch.Tensor | None = None,
        params: torch.Tensor | None = None,
    ) -> torch.Tensor:
        groups = self.split_groups(ecg) if isinstance(ecg, torch.Tensor) else list(ecg)
        if len(groups) != len(self.encoders):
            raise ValueError(f"expected {len(self.encoders)} lead groups, got {len(groups)}")
        h = torch.cat([enc(g) for enc, g in zip(self.encoders, groups)], dim=1)
        parts = [self.ecg_proj(h)]
        if self.demo_mlp is not None:
            if demographics is None:
                raise ValueError("this model uses demographics; pass a (B, %d) tensor" % len(self.config.demographic_inputs))
            parts.append(torch.relu(self.demo_mlp(demographics)))
        if self.param_mlp is not None:
            if params is None:
                raise ValueError("this model uses ECG parameters; pass a (B, %d) tensor" % len(self.config.param_inputs))
            parts.append(torch.relu(self.param_mlp(params)))
        return self.head(torch.cat(parts, dim=1)).squeeze(-1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
