"""Temporal convolutional network (TCN) encoder for one group of ECG leads.

A stack of residual blocks, each two dilated 1-D convolutions with ReLU and dropout and a
1x1 convolution on the skip path when the channel count changes, as in Bai, Kolter & Koltun,
"An empirical evaluation of generic convolutional and recurrent networks for sequence
modeling" (2018; reference code: github.com/locuslab/TCN, ``tcn.py``). The dilation doubles
per level, so the receptive field grows exponentially with depth.

One difference from the reference code: the convolutions are *non-causal* ("same" padding on
both sides). eLVMass-Net looks at a whole beat at once, so there is nothing to gain from
hiding the future, and symmetric padding keeps every sample centred in its receptive field.
The encoder ends with global average and max pooling over time, so it accepts any length.

    >>> import torch
    >>> enc = TCNEncoder(n_inputs=3, channels=(8, 8), kernel_size=5)
    >>> enc(torch.zeros(2, 3, 225)).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from elvmass.models.dropout import FastDropout


def receptive_field(kernel_size: int, n_levels: int, stride: int = 1) -> int:
    """Samples seen by one output of a TCN with ``n_levels`` blocks (two convs each, dilation 2**i).

    >>> receptive_field(5, 4)
    121
    """
    rf = 1
    for i in range(n_levels):
        rf += 2 * (kernel_size - 1) * (2**i)
    return rf * stride


class TemporalBlock(nn.Module):
    """Two dilated convolutions (same padding), ReLU, dropout, plus a residual connection.

    The dropout is :class:`~elvmass.models.dropout.FastDropout` (``nn.Dropout``'s arithmetic, masks
    drawn faster on CPU).

    ``weight_norm=True`` reparametrises the convolution weights as in the reference code.
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        kernel_size: int,
        dilation: int,
        dropout: float = 0.1,
        weight_norm: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for same padding, got {kernel_size}")
        padding = (kernel_size - 1) * dilation // 2

        def conv(cin: int, cout: int) -> nn.Module:
            c = nn.Conv1d(cin, cout, kernel_size, padding=padding, dilation=dilation)
            return nn.utils.parametrizations.weight_norm(c) if weight_norm else c

        self.conv1 = conv(n_inputs, n_outputs)
        self.conv2 = conv(n_outputs, n_outputs)
        self.net = nn.Sequential(
            self.conv1, nn.ReLU(), FastDropout(dropout), self.conv2, nn.ReLU(), FastDropout(dropout)
        )
        self.downsample = nn.Conv1d(n_inputs, n_outputs, 1) if n_inputs != n_outputs else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            out = self.net(x)
            res = x if self.downsample is None else self.downsample(x)
            return self.relu(out + res)
        # (B, C, 1, L) channels-last: the same convolutions as 2-D ones with a height of 1, which
        # oneDNN runs faster on CPU; the parameters are the Conv1d ones (state dicts unchanged).
        drop1, drop2 = self.net[2], self.net[5]
        out = drop1(torch.relu_(_conv2d(self.conv1, x)))
        out = drop2(torch.relu_(_conv2d(self.conv2, out)))
        res = x if self.downsample is None else _conv2d(self.downsample, x)
        return torch.relu_(out + res)


def _conv2d(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` applied to (B, C, 1, L) input: its (out, in, k) weight viewed as (out, in, 1, k)."""
    return F.conv2d(x, conv.weight.unsqueeze(2), conv.bias, stride=(1, conv.stride[0]),
                    padding=(0, conv.padding[0]), dilation=(1, conv.dilation[0]))


class TCNEncoder(nn.Module):
    """Leads of one group (B, n_inputs, L) -> embedding (B, 2 * channels[-1]).

    ``stride`` > 1 first averages the input over non-overlapping windows (cheap
    downsampling that keeps CPU training fast); ``channels`` gives one block per level with
    dilation ``2**level``. ``channels_last`` (default): on CPU, run the blocks on a
    (B, C, 1, L) channels-last view of the input, the same arithmetic in oneDNN's preferred
    layout (about a quarter less time per training step on the paper preset, see
    ``benchmarks/bench_train.py``); the parameters and state dict are the same either way.
    """

    def __init__(
        self,
        n_inputs: int,
        channels: tuple[int, ...] = (32, 32, 32, 32),
        kernel_size: int = 5,
        dropout: float = 0.1,
        weight_norm: bool = False,
        stride: int = 1,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last
        if n_inputs < 1 or not channels:
            raise ValueError("a TCN encoder needs at least one input lead and one level")
        self.pool_in = nn.AvgPool1d(stride) if stride > 1 else None
        blocks = []
        cin = n_inputs
        for i, cout in enumerate(channels):
            blocks.append(TemporalBlock(cin, int(cout), kernel_size, 2**i, dropout, weight_norm))
            cin = int(cout)
        self.network = nn.Sequential(*blocks)
        self.out_features = 2 * cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.channels_last and x.device.type == "cpu"):
            if self.pool_in is not None:
                x = self.pool_in(x)
            h = self.network(x)
            return torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        if self.pool_in is not None:
            k = self.pool_in.kernel_size[0]
            x = F.avg_pool2d(x, (1, k), (1, k))
        h = self.network(x)
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
