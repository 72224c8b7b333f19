"""The fit loop for eLVMass-Net: L1 loss, AdamW, a learning-rate schedule, early stopping.

The model is selected on a validation subset (the epoch with the lowest validation MAE in
grams); its weights are restored at the end. Training is deterministic for a given seed on
CPU: ``torch.manual_seed``, a seeded shuffling generator, deterministic algorithms, and a
fixed thread count.

    >>> import numpy as np
    >>> from elvmass.models.elvmassnet import ElvmassNetConfig
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(64, 12, 50)).astype("float32")
    >>> y = x[:, 6].std(axis=1) * 10  # target depends on lead V1's amplitude
    >>> data = TensorData(x, np.zeros((64, 0), "float32"), np.zeros((64, 0), "float32"), y)
    >>> cfg = ElvmassNetConfig(channels=(8,), demographic_inputs=(), param_inputs=(), head_hidden=(8,))
    >>> res = fit_model(cfg, data, data, TrainConfig(epochs=2, progress=False), target_scale_g=1.0)
    >>> len(res.history)
    2
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from elvmass.models.elvmassnet import ElvmassNet, ElvmassNetConfig


@dataclass(frozen=True)
class TrainConfig:
    """How one model is fitted.

    ``schedule``: "cosine" (cosine annealing over ``epochs``), "plateau" (halve the rate when
    the validation MAE stalls for ``patience // 2`` epochs) or "none".
    ``shift_max_samples`` / ``amplitude_jitter``: synchronized augmentation, the same random
    shift and the same gain for all 12 leads of a sample (0 disables each).
    """

    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-3
    patience: int = 8
    schedule: str = "cosine"
    shift_max_samples: int = 0
    amplitude_jitter: float = 0.0
    seed: int = 0
    num_threads: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "plateau", "none"):
            raise ValueError(f"schedule must be 'cosine', 'plateau' or 'none', got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TensorData:
    """Model-ready arrays for N cases: ECG views (N, 12, L), demographics (N, d), params (N, p),
    and the normalised target (N,) (NaN allowed where unknown, e.g. at prediction time)."""

    ecg: np.ndarray
    demographics: np.ndarray
    params: np.ndarray
    target: np.ndarray

    def __post_init__(self) -> None:
        self.ecg = np.ascontiguousarray(self.ecg, dtype=np.float32)
        self.demographics = self._two_d(self.demographics)
        self.params = self._two_d(self.params)
        self.target = np.ascontiguousarray(self.target, dtype=np.float32).reshape(-1)
        n = len(self.ecg)
        if not (len(self.demographics) == len(self.params) == len(self.target) == n):
            raise ValueError("ecg, demographics, params and target must have the same number of cases")

    def _two_d(self, arr) -> np.ndarray:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        return arr if arr.ndim == 2 else arr.reshape(len(self.ecg), -1)

    def __len__(self) -> int:
        return len(self.ecg)

    def subset(self, idx) -> "TensorData":
        idx = np.asarray(idx)
        return TensorData(self.ecg[idx], self.demographics[idx], self.params[idx], self.target[idx])


@dataclass
class TrainResult:
    """The fitted model (best validation epoch restored) and its learning curve."""

    model: ElvmassNet
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_mae_g: float = math.nan
    elapsed_s: float = 0.0


def _augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    if cfg.amplitude_jitter > 0:
        gain = 1.0 + cfg.amplitude_jitter * torch.randn(x.shape[0], 1, 1, generator=gen)
        x = x * gain
    if cfg.shift_max_samples > 0:
        shifts = torch.randint(-cfg.shift_max_samples, cfg.shift_max_samples + 1, (x.shape[0],), generator=gen)
        x = torch.stack([torch.roll(xi, int(s), dims=-1) for xi, s in zip(x, shifts)])
    return x


def _tensors(data: TensorData, idx=None):
    sl = slice(None) if idx is None else idx
    return (
        torch.from_numpy(data.ecg[sl]),
        torch.from_numpy(data.demographics[sl]),
        torch.from_numpy(data.params[sl]),
        torch.from_numpy(data.target[sl]),
    )


@torch.no_grad()
def predict_normalised(model: nn.Module, data: TensorData, batch_size: int = 256) -> np.ndarray:
    """Model outputs (normalised target units) for every case, in order."""
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        ecg, demo, par, _ = _tensors(data, slice(start, start + batch_size))
        out.append(model(ecg, demo, par).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def fit_model(
    model_config: ElvmassNetConfig,
    train: TensorData,
    val: TensorData,
    config: TrainConfig = TrainConfig(),
    *,
    target_scale_g: float = 1.0,
    description: str = "training",
    augment=None,
) -> TrainResult:
    """Fit eLVMass-Net on ``train``, select the epoch with the lowest MAE on ``val``.

    ``target_scale_g`` converts normalised target units back to grams so the validation MAE
    (shown in the progress bar and stored in the history) is in grams. ``augment(x, gen) -> x``,
    when given, transforms each training batch of ECG views (B, 12, L) after the built-in
    augmentation, drawing its randomness from the loop's seeded generator ``gen`` (e.g. the
    synchronized random crop of :class:`elvmass.models.elvmassnet_spec.RandomCrop`); validation
    and prediction see the views unchanged.
    """
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"{description}: training and validation sets must not be empty (got {len(train)}, {len(val)})")
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(config.seed)
    model = ElvmassNet(dataclasses.replace(model_config, seed=config.seed))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n_batches = math.ceil(len(train) / config.batch_size)
    if config.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * n_batches)
    elif config.schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, config.patience // 2))
    else:
        sched = None
    loss_fn = nn.L1Loss()
    gen = torch.Generator().manual_seed(config.seed)
    ecg_all, demo_all, par_all, y_all = _tensors(train)
    history: list[dict] = []
    best_state = copy.deepcopy(model.state_dict())
    best_mae, best_epoch, stale = math.inf, 0, 0
    t0 = time.perf_counter()

    progress = None
    task = None
    if config.progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(), transient=True,
        )
        progress.start()
        task = progress.add_task(description, total=config.epochs, status="")
    try:
        for epoch in range(1, config.epochs + 1):
            model.train()
            perm = torch.randperm(len(train), generator=gen)
            total = 0.0
            for b in range(n_batches):
                idx = perm[b * config.batch_size : (b + 1) * config.batch_size]
                x = _augment(ecg_all[idx], config, gen)
                if augment is not None:
                    x = augment(x, gen)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x, demo_all[idx], par_all[idx]), y_all[idx])
                loss.backward()
                opt.step()
                if config.schedule == "cosine":
                    sched.step()
                total += float(loss.detach()) * len(idx)
            train_mae_g = total / len(train) * target_scale_g
            pred = predict_normalised(model, val)
            val_mae_g = float(np.nanmean(np.abs(pred - val.target))) * target_scale_g
            if config.schedule == "plateau":
                sched.step(val_mae_g)
            history.append({"epoch": epoch, "train_mae_g": train_mae_g, "val_mae_g": val_mae_g,
                            "lr": float(opt.param_groups[0]["lr"])})
            if val_mae_g < best_mae - 1e-6:
                best_mae, best_epoch, stale = val_mae_g, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
            if progress is not None:
                progress.update(task, advance=1, status=f"epoch {epoch} val MAE {val_mae_g:.1f} g (best {best_mae:.1f})")
            if stale >= config.patience:
                break
    finally:
        if progress is not None:
            progress.stop()
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, history, best_epoch, best_mae, time.perf_counter() - t0)
