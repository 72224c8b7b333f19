"""The segmentation network: a small 1-D U-Net that gives, for every sample of one lead, the probability
of P wave, QRS complex, T wave or none.

Architecture (after the U-Net ECG delineators, e.g. Moskalenko et al., "Deep learning for ECG
segmentation", 2019, trained on LUDB): four levels at 250, 125, 62.5 and 31.25 Hz; each level two
convolutions (kernel ``KERNEL``), batch norm and ReLU; max-pooling by 2 going down, linear upsampling and
a skip connection going up; a 1x1 convolution to the four classes. One lead at a time, so the same
weights serve any lead and any lead count.

Input (:func:`prepare_leads`): each lead band-passed 0.5-40 Hz (elvmass's filter), resampled to
``MODEL_FS_HZ`` and divided by its 99th percentile of absolute value (so amplitude does not matter).

    >>> import torch
    >>> net = SegmentNet()
    >>> net(torch.zeros(2, 1, 1000)).shape
    torch.Size([2, 4, 1000])
    >>> receptive_field_samples() / MODEL_FS_HZ   # seconds of ECG one output sample sees
    1.088
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from elvmass.record import resample_signal
from elvmass.signal.filters import bandpass_filter

MODEL_FS_HZ = 250.0
CHANNELS = (8, 16, 24, 32)
KERNEL = 7
N_CLASSES = 4
#: the band (low Hz, high Hz, notch) every lead is filtered to before the network sees it
INPUT_BAND = (0.5, 40.0, None)


def prepare_leads(signal_mv: np.ndarray, fs_hz: float) -> np.ndarray:
    """(leads, n) mV at ``fs_hz`` -> (leads, m) float32 network input at :data:`MODEL_FS_HZ`."""
    x = np.asarray(signal_mv, dtype=np.float32)
    x = np.nan_to_num(x)
    x = bandpass_filter(x, fs_hz, *INPUT_BAND) if x.shape[-1] >= 64 else x
    return prepare_filtered(x, fs_hz)


def prepare_filtered(filtered_mv: np.ndarray, fs_hz: float) -> np.ndarray:
    """:func:`prepare_leads` for leads already band-passed to :data:`INPUT_BAND` (the signal pipeline's default): resampled
    to :data:`MODEL_FS_HZ` and divided by each lead's 99th percentile of absolute value."""
    x = resample_signal(np.nan_to_num(np.asarray(filtered_mv, dtype=np.float32)), fs_hz, MODEL_FS_HZ)
    scale = np.percentile(np.abs(x), 99, axis=-1, keepdims=True)
    return (x / np.maximum(scale, 0.02)).astype(np.float32)


def _block(cin: int, cout: int) -> nn.Sequential:
    pad = KERNEL // 2
    return nn.Sequential(
        nn.Conv1d(cin, cout, KERNEL, padding=pad), nn.BatchNorm1d(cout), nn.ReLU(),
        nn.Conv1d(cout, cout, KERNEL, padding=pad), nn.BatchNorm1d(cout), nn.ReLU(),
    )


class SegmentNet(nn.Module):
    """(batch, 1, n) -> (batch, 4, n) class logits; ``n`` any length (padded to a multiple of 8 inside)."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.down = nn.ModuleList()
        cin = 1
        for c in self.channels:
            self.down.append(_block(cin, c))
            cin = c
        self.up = nn.ModuleList()
        for c_skip in reversed(self.channels[:-1]):
            self.up.append(_block(cin + c_skip, c_skip))
            cin = c_skip
        self.head = nn.Conv1d(cin, N_CLASSES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        factor = 2 ** (len(self.channels) - 1)
        pad = (-n) % factor
        if pad:
            x = nn.functional.pad(x, (0, pad))
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = nn.functional.max_pool1d(x, 2)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = nn.functional.interpolate(x, size=skip.shape[-1], mode="linear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)[..., :n]


def receptive_field_samples(n_levels: int = len(CHANNELS), kernel: int = KERNEL) -> int:
    """Input samples (at :data:`MODEL_FS_HZ`) that one output sample depends on, through the encoder."""
    rf, jump = 1, 1
    for level in range(n_levels):
        if level:
            rf += jump  # max-pool of 2
            jump *= 2
        rf += 2 * (kernel - 1) * jump
    # the decoder's convolutions widen it further on the way up
    for level in reversed(range(n_levels - 1)):
        jump //= 2
        rf += 2 * (kernel - 1) * jump
    return rf


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class LeadsAsRows(nn.Module):
    """The same network, computed with 2-D convolutions on ``(1, 1, leads, n)``: each lead is a row and every
    kernel is one row high, so no lead sees another. Same weights, same results to float32 rounding; it is
    the form :func:`export_onnx` writes, because onnxruntime runs 2-D convolutions in its blocked layout,
    2.7x faster than PyTorch runs the 1-D network on 12 leads of 176 samples (0.85 against 2.3 ms, one core)."""

    def __init__(self, net: SegmentNet) -> None:
        super().__init__()
        self.net = net
        self.eval()  # (a new module is in training mode, and torch.onnx.export restores it recursively afterwards)

    @staticmethod
    def _block(block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        for layer in block:
            if isinstance(layer, nn.Conv1d):
                x = nn.functional.conv2d(x, layer.weight[:, :, None, :], layer.bias, padding=(0, layer.padding[0]))
            elif isinstance(layer, nn.BatchNorm1d):
                x = nn.functional.batch_norm(x, layer.running_mean, layer.running_var, layer.weight, layer.bias,
                                             False, 0.0, layer.eps)
            else:
                x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 1, leads, n) -> (1, 4, leads, n) logits; ``n`` a multiple of ``2 ** (levels - 1)``."""
        skips = []
        for i, block in enumerate(self.net.down):
            if i:
                x = nn.functional.max_pool2d(x, (1, 2))
            x = self._block(block, x)
            skips.append(x)
        for block, skip in zip(self.net.up, reversed(skips[:-1])):
            # x2 along time only (n is a multiple of 2 ** (levels - 1), so exactly the skip's length): constant
            # scales keep the ONNX graph free of shape arithmetic
            x = nn.functional.interpolate(x, scale_factor=(1.0, 2.0), mode="bilinear", align_corners=False)
            x = self._block(block, torch.cat([x, skip], dim=1))
        head = self.net.head
        return nn.functional.conv2d(x, head.weight[:, :, None, :], head.bias)


def export_onnx(net: SegmentNet, path) -> None:
    """Write ``net`` as an ONNX graph of :class:`LeadsAsRows`: input ``x`` (1, 1, leads, n) float32, ``n`` a
    multiple of ``2 ** (len(channels) - 1)``; output ``logits`` (1, 4, leads, n). Leads and length are free."""
    import io
    import warnings

    from elvmass.atomic import atomic_write_bytes

    n = 2 ** (len(net.channels) - 1) * 22
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the tracer's notes on shape arithmetic; the graph is checked by the tests
        warnings.simplefilter("ignore")
        torch.onnx.export(LeadsAsRows(net), (torch.zeros(1, 1, 12, n),), buf, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {2: "leads", 3: "n"}, "logits": {2: "leads", 3: "n"}}, opset_version=17,
                          dynamo=False)
    atomic_write_bytes(path, buf.getvalue())
