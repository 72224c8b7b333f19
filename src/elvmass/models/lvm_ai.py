"""LVM-AI (Khurshid et al., "Deep learning to predict cardiac magnetic resonance-derived left
ventricular mass and hypertrophy from 12-lead electrocardiograms", Circ Cardiovasc Imaging 2021; the
model zoo of ml4h, github.com/broadinstitute/ml4h) as a model family, retrained in elvmass's protocol.

======================  ==========================================================================
part                    here
======================  ==========================================================================
input                   the full 10-s 12-lead ECG, band-passed as every elvmass model sees it, at
                        ``fs_hz`` = 100 Hz (LVM-AI: 500 Hz; 100 Hz keeps CPU training in minutes and
                        keeps the 0.5-40 Hz band), voltage in uV / 2000 as ml4h scales it
first convolution       ``filters`` channels, kernel ``kernel``, swish
3 dense blocks          3 convolutions each (``growth`` channels, kernel ``kernel``, swish); every
                        convolution sees the concatenation of the block input and all earlier outputs
                        (densely connected); max-pooling by ``pool`` between blocks
                        -> 1 + 3 x 3 = 10 convolutional layers (:func:`count_conv_layers`)
head                    flatten, concatenated with age, sex and BMI (standardised) ["original"] or
                        with those and eLVMass-Net's scalar inputs (height, weight, QRS duration,
                        P / R / T axis) ["all"], a 256-unit dense layer (swish), dropout, LV mass
loss                    log-cosh of the standardised error (the paper's symmetric loss);
                        ``loss="asymmetric"`` weights underestimation by (1 + ``asymmetry``), the
                        paper's asymmetric variant that penalises missing a large heart
training               Adam (lr ``lr``), batches of ``batch``, at most ``epochs`` epochs, the epoch with
                        the lowest validation MAE kept (patience ``patience``); one thread, seeded
======================  ==========================================================================

Receptive field (:func:`receptive_field`): 912 samples = 9.1 s at 100 Hz with kernel 15 and pooling 4,
so the last block sees nearly the whole 10-s record.

    >>> net = LvmAiNet(n_scalars=3)
    >>> count_conv_layers(net), receptive_field()
    (10, 912)
    >>> import torch
    >>> net(torch.zeros(2, 12, 1000), torch.zeros(2, 3)).shape
    torch.Size([2])
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from elvmass.features import scalar_matrix
from elvmass.models.base import FittedModel, ModelSpec, register
from elvmass.signal.config import SignalConfig

SETTINGS = ("original", "all")
ORIGINAL_SCALARS = ("age_years", "sex_male", "bmi")
ALL_SCALARS = ("age_years", "sex_male", "bmi", "height_cm", "weight_kg", "qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg")
UV_PER_MV = 1000.0
ML4H_SCALE_UV = 2000.0


def receptive_field(kernel: int = 15, pool: int = 4, convs_per_block: int = 3, n_blocks: int = 3) -> int:
    """Input samples one output of the last convolution sees (first conv + blocks, pooling between)."""
    rf, jump = 1 + (kernel - 1), 1  # first convolution
    for b in range(n_blocks):
        if b:
            rf += (pool - 1) * jump
            jump *= pool
        rf += convs_per_block * (kernel - 1) * jump
    return rf


class DenseBlock(nn.Module):
    def __init__(self, n_in: int, growth: int, kernel: int, n_convs: int = 3) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(n_in + i * growth, growth, kernel, padding=kernel // 2) for i in range(n_convs))
        self.n_out = n_in + n_convs * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.cat([x, nn.functional.silu(conv(x))], dim=1)
        return x


class LvmAiNet(nn.Module):
    """(batch, 12, L) ECG + (batch, n_scalars) -> (batch,) standardised LV mass."""

    def __init__(self, n_scalars: int, length: int = 1000, filters: int = 16, growth: int = 16, kernel: int = 15,
                 pool: int = 4, dense: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        self.first = nn.Conv1d(12, filters, kernel, padding=kernel // 2)
        blocks, n = [], filters
        for _ in range(3):
            blocks.append(DenseBlock(n, growth, kernel))
            n = blocks[-1].n_out
        self.blocks = nn.ModuleList(blocks)
        self.pool = pool
        flat = n * (length // pool // pool)
        self.dense = nn.Linear(flat + n_scalars, dense)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dense, 1)
        self.length = length

    def forward(self, ecg: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        x = nn.functional.silu(self.first(ecg))
        for i, block in enumerate(self.blocks):
            if i:
                x = nn.functional.max_pool1d(x, self.pool)
            x = block(x)
        x = torch.cat([x.flatten(1), scalars], dim=1)
        return self.out(self.drop(nn.functional.silu(self.dense(x)))).squeeze(-1)


def count_conv_layers(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv1d) for m in model.modules())


def log_cosh_loss(pred: torch.Tensor, target: torch.Tensor, asymmetry: float = 0.0) -> torch.Tensor:
    """mean log(cosh(pred - target)); with ``asymmetry`` > 0 underestimates weigh (1 + asymmetry) times."""
    e = pred - target
    loss = e + nn.functional.softplus(-2.0 * e) - math.log(2.0)  # log(cosh(e)), stable
    if asymmetry:
        loss = torch.where(e < 0, (1.0 + asymmetry) * loss, loss)
    return loss.mean()


def _scalars(data, names) -> np.ndarray:
    return scalar_matrix(data.scalars, names)


@register
@dataclass(frozen=True)
class LvmAiSpec(ModelSpec):
    """LVM-AI in the "original" (ECG + age, sex, BMI) or "all" (+ eLVMass-Net's inputs) setting."""

    family = "lvm_ai"
    setting: str = "original"
    fs_hz: float = 100.0
    filters: int = 16
    growth: int = 16
    kernel: int = 15
    pool: int = 4
    dense: int = 256
    dropout: float = 0.2
    loss: str = "symmetric"
    asymmetry: float = 1.0
    lr: float = 1e-3
    batch: int = 32
    epochs: int = 30
    patience: int = 8

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ValueError(f"lvm_ai setting must be one of {SETTINGS}, got {self.setting!r}")
        if self.loss not in ("symmetric", "asymmetric"):
            raise ValueError(f"lvm_ai loss must be 'symmetric' or 'asymmetric', got {self.loss!r}")
        if not self.name:
            object.__setattr__(self, "name", f"lvm_ai_{self.setting}")

    @property
    def signal(self) -> SignalConfig:
        return SignalConfig(view="full", out_fs_hz=self.fs_hz)

    @property
    def signals(self) -> tuple:
        return (self.signal,)

    @property
    def scalar_names(self) -> tuple[str, ...]:
        return ORIGINAL_SCALARS if self.setting == "original" else ALL_SCALARS

    def build(self) -> LvmAiNet:
        return LvmAiNet(len(self.scalar_names), self.signal.view_length, self.filters, self.growth, self.kernel,
                        self.pool, self.dense, self.dropout)

    def fit(self, data, split, *, device: str = "cpu", progress: bool = False, label: str = "") -> "FittedLvmAi":
        seed = self.seed + max(int(split.fold), 0)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        ecg = torch.from_numpy(np.ascontiguousarray(data.views(self.signal) * (UV_PER_MV / ML4H_SCALE_UV), dtype=np.float32))
        raw = _scalars(data, self.scalar_names)
        tr = raw[split.train]
        med = np.array([np.nanmedian(c) if np.isfinite(c).any() else 0.0 for c in tr.T])
        filled = np.where(np.isfinite(raw), raw, med)
        mean, sd = filled[split.train].mean(0), filled[split.train].std(0)
        sd = np.where(sd > 0, sd, 1.0)
        sca = torch.from_numpy(((filled - mean) / sd).astype(np.float32))
        y = data.lvm_g
        y_mean, y_sd = float(np.mean(y[split.train])), float(np.std(y[split.train]) or 1.0)
        yt = torch.from_numpy(((y - y_mean) / y_sd).astype(np.float32))
        net = self.build().to(device)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        asym = self.asymmetry if self.loss == "asymmetric" else 0.0
        train_idx = torch.from_numpy(np.asarray(split.train, dtype=np.int64))
        val_rows = np.asarray(split.val if len(split.val) else split.train, dtype=np.int64)
        best, best_state, best_epoch, history, bad = math.inf, None, 0, [], 0
        t0 = time.time()
        for epoch in range(self.epochs):
            net.train()
            order = train_idx[torch.randperm(len(train_idx), generator=gen)]
            total, abs_err, seen = 0.0, 0.0, 0
            for i in range(0, len(order), self.batch):
                b = order[i : i + self.batch]
                if len(b) < 2:
                    continue
                pred = net(ecg[b].to(device), sca[b].to(device))
                loss = log_cosh_loss(pred, yt[b].to(device), asym)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
                abs_err += float((pred.detach().cpu() - yt[b]).abs().sum()) * y_sd
                seen += len(b)
            val_pred = _predict(net, ecg, sca, val_rows, device) * y_sd + y_mean
            val_mae = float(np.mean(np.abs(val_pred - y[val_rows])))
            history.append({"epoch": epoch + 1, "train_loss": total / max(seen, 1), "train_mae_g": abs_err / max(seen, 1),
                            "val_mae_g": val_mae})
            if progress:
                print(f"{label or self.name}: epoch {epoch + 1} val MAE {val_mae:.1f} g", flush=True)
            if val_mae < best:
                best, best_state, best_epoch, bad = val_mae, copy.deepcopy(net.state_dict()), epoch + 1, 0
            else:
                bad += 1
                if bad >= self.patience:
                    break
        net.load_state_dict(best_state)
        net.eval()
        norm = {"scalar_median": med.tolist(), "scalar_mean": mean.tolist(), "scalar_sd": sd.tolist(),
                "target_mean_g": y_mean, "target_sd_g": y_sd}
        info = {"n_train": int(len(split.train)), "n_val": int(len(split.val)), "best_epoch": best_epoch,
                "val_mae_g": round(best, 3), "epochs_run": len(history), "elapsed_s": round(time.time() - t0, 1)}
        return FittedLvmAi(self, net.cpu(), norm, history, info)

    @classmethod
    def load_fitted(cls, spec, arrays, meta) -> "FittedLvmAi":
        net = spec.build()
        net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
        net.eval()
        return FittedLvmAi(spec, net, meta["norm"], [], dict(meta.get("info", {})))


def _predict(net, ecg, sca, rows, device="cpu", batch: int = 128) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            b = torch.from_numpy(np.asarray(rows[i : i + batch], dtype=np.int64))
            out.append(net(ecg[b].to(device), sca[b].to(device)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


class FittedLvmAi(FittedModel):
    def __init__(self, spec: LvmAiSpec, net: LvmAiNet, norm: dict, history=None, info=None) -> None:
        self.spec, self.net, self.norm = spec, net, norm
        self.history, self.info = list(history or []), dict(info or {})

    def predict(self, data, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=int)
        ecg = torch.from_numpy(np.ascontiguousarray(data.views(self.spec.signal)[rows] * (UV_PER_MV / ML4H_SCALE_UV),
                                                    dtype=np.float32))
        raw = _scalars(data, self.spec.scalar_names)[rows]
        n = self.norm
        filled = np.where(np.isfinite(raw), raw, np.asarray(n["scalar_median"]))
        sca = torch.from_numpy(((filled - np.asarray(n["scalar_mean"])) / np.asarray(n["scalar_sd"])).astype(np.float32))
        out = _predict(self.net, ecg, sca, np.arange(len(rows)))
        return out * n["target_sd_g"] + n["target_mean_g"]

    def state(self):
        arrays = {k: v.detach().contiguous().cpu().numpy().copy() for k, v in self.net.state_dict().items()}
        return arrays, {"norm": self.norm, "info": self.info}


def _preset_sizes(preset) -> dict:
    """Training length for a study preset: ``quick`` (tests, a smoke run) or anything else (``paper``)."""
    if getattr(preset, "name", "") == "quick":
        return {"epochs": 3, "patience": 2}
    return {}


def _register_recipes() -> None:
    from elvmass.models.registry import register_recipe

    for setting in SETTINGS:
        def recipe(preset, setting=setting):
            return LvmAiSpec(name=f"lvm_ai_{setting}", setting=setting, seed=preset.seed, **_preset_sizes(preset))

        register_recipe(f"lvm_ai_{setting}", group="lvm_ai")(recipe)


_register_recipes()
