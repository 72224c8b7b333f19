"""The fit loop for eLVMass-Net: L1 loss, AdamW, a learning-rate schedule, early stopping.

The model is selected on a validation subset (the epoch with the lowest validation MAE in
grams); its weights are restored at the end. Training is deterministic for a given seed on
one machine (CPU): ``torch.manual_seed``, a seeded shuffling generator, deterministic
algorithms, and a fixed thread count (``tests/test_determinism.py``; across machines see the
README's note on determinism).

Where the time goes (``benchmarks/bench_train.py`` times each phase) and what is done about it:

=============================  =============================================================
phase                          how
=============================  =============================================================
data                           tensors made once per fold (``torch.from_numpy``, no copy); one
                               shuffled copy per epoch, batches are views of it
augmentation                   vectorised (one ``gather`` for the per-sample shift instead of a
                               Python loop of ``torch.roll``), the same random draws
forward / backward             channels-last 2-D convolutions on CPU (:mod:`elvmass.models.tcn`)
optimiser                      AdamW's fused kernel (one pass over all parameters)
validation                     ``torch.inference_mode``, the whole validation set in large batches
early-stopping bookkeeping     the best weights kept as tensor clones, not deep copies
schedule                       ``"onecycle"`` (Smith & Topin 2019) reaches the same error in
                               fewer epochs than ``"cosine"``
=============================  =============================================================

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

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from elvmass.models.elvmassnet import ElvmassNet, ElvmassNetConfig


SCHEDULES = ("cosine", "onecycle", "plateau", "none")


@dataclass(frozen=True)
class TrainConfig:
    """How one model is fitted.

    ``schedule``: "cosine" (cosine annealing over ``epochs``), "onecycle" (warm up to ``lr``
    over the first 30 % of the steps, then cosine down to ``lr / 1e4``: the one-cycle policy of
    Smith & Topin 2019, ``torch.optim.lr_scheduler.OneCycleLR``), "plateau" (halve the rate
    when the validation MAE stalls for ``patience // 2`` epochs) or "none".
    ``shift_max_samples`` / ``amplitude_jitter``: synchronized augmentation, the same random
    shift and the same gain for all 12 leads of a sample (0 disables each).
    ``bf16``: run each training forward pass under ``torch.autocast`` in bfloat16 (fast on CPUs
    with AMX or AVX512-BF16 and on recent GPUs, slow elsewhere); the weights, the loss, the
    optimiser and validation stay in float32.
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
    bf16: bool = False

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))}, got {self.schedule!r}")
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


def resolve_device(device: str = "cpu") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"`` (``"cuda:N"``)."""
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but this torch has no CUDA device")
        return torch.device(name)
    if name != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return torch.device("cpu")


def _augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Synchronized augmentation: one gain and one circular shift per sample, all leads alike.

    The random draws (gain, then shift, on the CPU generator) and the result are those of the
    earlier per-sample ``torch.roll`` loop; the shift is one ``gather``.
    """
    if cfg.amplitude_jitter > 0:
        gain = 1.0 + cfg.amplitude_jitter * torch.randn(x.shape[0], 1, 1, generator=gen)
        x = x * gain.to(x.device)
    if cfg.shift_max_samples > 0:
        shifts = torch.randint(-cfg.shift_max_samples, cfg.shift_max_samples + 1, (x.shape[0],), generator=gen)
        length = x.shape[-1]
        # roll by s: out[..., t] = x[..., (t - s) mod L]
        src = (torch.arange(length).unsqueeze(0) - shifts.unsqueeze(1)) % length
        x = x.gather(-1, src.to(x.device).unsqueeze(1).expand(-1, x.shape[1], -1))
    return x


def _as_tensors(data: TensorData, device: torch.device):
    """The four arrays as tensors on ``device``; on CPU these share memory with ``data``."""
    arrays = (data.ecg, data.demographics, data.params, data.target)
    return tuple(torch.from_numpy(a).to(device) for a in arrays)


def _set_threads(n: int) -> None:
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def predict_normalised(model: nn.Module, data: TensorData, batch_size: int = 1024, *,
                       device: str | torch.device | None = None) -> np.ndarray:
    """Model outputs (normalised target units) for every case, in order.

    Runs on ``device`` (default: where the model's parameters are; ``"auto"``/``"cpu"``/``"cuda"``
    move the model there) under ``torch.inference_mode``. The batch size does not change the
    numbers beyond float rounding of the convolution kernels.
    """
    if device is not None:
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        model.to(dev)
    else:
        p = next(model.parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
    model.eval()
    if len(data) == 0:
        return np.zeros(0, np.float32)
    ecg, demo, par, _ = _as_tensors(data, dev)
    out = []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            sl = slice(start, start + batch_size)
            out.append(model(ecg[sl], demo[sl], par[sl]).float().cpu().numpy())
    return np.concatenate(out)


def _make_scheduler(opt, config: TrainConfig, n_batches: int):
    total = config.epochs * n_batches
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total, pct_start=0.3,
                                                   anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, config.patience // 2))
    return None


def fit_model(
    model_config: ElvmassNetConfig,
    train: TensorData,
    val: TensorData,
    config: TrainConfig = TrainConfig(),
    *,
    target_scale_g: float = 1.0,
    description: str = "training",
    device: str = "cpu",
    timings: dict | None = None,
    augment=None,
) -> TrainResult:
    """Fit eLVMass-Net on ``train``, select the epoch with the lowest MAE on ``val``.

    ``target_scale_g`` converts normalised target units back to grams so the validation MAE
    (shown in the progress bar and stored in the history) is in grams. ``device``: ``"cpu"``
    (default), ``"cuda"`` or ``"auto"`` (CUDA when available); the returned model is on the CPU
    either way. ``timings``, when a dict, receives the seconds spent per phase (``data``,
    ``forward``, ``backward``, ``optimiser``, ``validation``, ``bookkeeping``), for the benchmark.
    ``augment(x, gen) -> x``, when given, transforms each training batch of ECG views (B, 12, L)
    after the built-in augmentation, drawing its randomness from the loop's seeded generator
    ``gen`` (e.g. the synchronized random crop of :class:`elvmass.models.elvmassnet_spec.RandomCrop`);
    validation and prediction see the views unchanged.
    """
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"{description}: training and validation sets must not be empty (got {len(train)}, {len(val)})")
    dev = resolve_device(device)
    _set_threads(config.num_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(config.seed)
    model = ElvmassNet(dataclasses.replace(model_config, seed=config.seed)).to(dev)
    fused = dev.type in ("cpu", "cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    n_train, bs = len(train), config.batch_size
    n_batches = math.ceil(n_train / bs)
    sched = _make_scheduler(opt, config, n_batches)
    step_sched = config.schedule in ("cosine", "onecycle")
    gen = torch.Generator().manual_seed(config.seed)
    ecg_all, demo_all, par_all, y_all = _as_tensors(train, dev)
    val_target = torch.from_numpy(val.target).to(dev)
    val_known = torch.isfinite(val_target)
    history: list[dict] = []
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_mae, best_epoch, stale = math.inf, 0, 0
    t_phase = dict.fromkeys(("data", "forward", "backward", "optimiser", "validation", "bookkeeping"), 0.0)
    clock = time.perf_counter
    t0 = clock()

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
            ta = clock()
            perm = torch.randperm(n_train, generator=gen).to(dev)
            # one shuffled copy per epoch; every batch below is a view of it
            ecg_e, demo_e, par_e, y_e = (t.index_select(0, perm) for t in (ecg_all, demo_all, par_all, y_all))
            t_phase["data"] += clock() - ta
            total = torch.zeros((), dtype=torch.float64, device=dev)
            for b in range(n_batches):
                ta = clock()
                sl = slice(b * bs, (b + 1) * bs)
                x = _augment(ecg_e[sl], config, gen)
                if augment is not None:
                    x = augment(x, gen)
                tb = clock()
                opt.zero_grad(set_to_none=True)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=config.bf16):
                    pred = model(x, demo_e[sl], par_e[sl])
                loss = torch.nn.functional.l1_loss(pred.float(), y_e[sl])
                tc = clock()
                loss.backward()
                td = clock()
                opt.step()
                if step_sched:
                    sched.step()
                total += loss.detach() * len(pred)
                te = clock()
                t_phase["data"] += tb - ta
                t_phase["forward"] += tc - tb
                t_phase["backward"] += td - tc
                t_phase["optimiser"] += te - td
            ta = clock()
            train_mae_g = float(total) / n_train * target_scale_g
            pred = torch.from_numpy(predict_normalised(model, val, device=dev)).to(dev)
            val_mae_g = float((pred - val_target).abs()[val_known].mean()) * target_scale_g
            tb = clock()
            if config.schedule == "plateau":
                sched.step(val_mae_g)
            history.append({"epoch": epoch, "train_mae_g": train_mae_g, "val_mae_g": val_mae_g,
                            "lr": float(opt.param_groups[0]["lr"])})
            if val_mae_g < best_mae - 1e-6:
                best_mae, best_epoch, stale = val_mae_g, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
            if progress is not None:
                progress.update(task, advance=1, status=f"epoch {epoch} val MAE {val_mae_g:.1f} g (best {best_mae:.1f})")
            t_phase["validation"] += tb - ta
            t_phase["bookkeeping"] += clock() - tb
            if stale >= config.patience:
                break
    finally:
        if progress is not None:
            progress.stop()
    model.load_state_dict(best_state)
    model.to("cpu")
    model.eval()
    if timings is not None:
        timings.update(t_phase)
    return TrainResult(model, history, best_epoch, best_mae, time.perf_counter() - t0)
