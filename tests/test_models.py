"""eLVMass-Net and its parts: shapes, non-causal dilations, input switches, config round trip,
and the demographics comparator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from elvmass.models.demographics import DemographicsRegressor, demographic_features
from elvmass.models.elvmassnet import INPUT_SETS, ElvmassNet, ElvmassNetConfig, count_parameters
from elvmass.models.tcn import TCNEncoder, TemporalBlock, receptive_field


def test_temporal_block_keeps_length_and_is_non_causal():
    torch.manual_seed(0)
    block = TemporalBlock(1, 4, kernel_size=3, dilation=4, dropout=0.0).eval()
    x = torch.zeros(1, 1, 50)
    base = block(x)
    assert base.shape == (1, 4, 50)
    x2 = x.clone()
    x2[0, 0, 30] = 1.0  # an impulse in the "future" of sample 22
    diff = (block(x2) - base).abs().sum(dim=1)[0]
    changed = torch.nonzero(diff > 0).flatten().tolist()
    # two convs with kernel 3, dilation 4: the impulse reaches +-8 samples on both sides
    assert min(changed) == 22 and max(changed) == 38


def test_even_kernel_rejected():
    with pytest.raises(ValueError, match="odd"):
        TemporalBlock(1, 1, kernel_size=4, dilation=1)


def test_receptive_field_formula():
    assert receptive_field(5, 4) == 1 + 2 * 4 * (1 + 2 + 4 + 8)
    assert receptive_field(3, 1) == 5


def test_encoder_output_size_any_length():
    enc = TCNEncoder(6, channels=(8, 12), kernel_size=5, stride=2)
    for length in (90, 225, 1000):
        assert enc(torch.randn(3, 6, length)).shape == (3, 24)


@pytest.mark.parametrize("inputs", sorted(INPUT_SETS))
def test_input_combinations(inputs):
    cfg = ElvmassNetConfig.for_inputs(inputs, channels=(8, 8), head_hidden=(8,))
    net = ElvmassNet(cfg).eval()
    demo_n, par_n = len(cfg.demographic_inputs), len(cfg.param_inputs)
    x = torch.randn(5, 12, 100)
    out = net(x, torch.randn(5, demo_n) if demo_n else None, torch.randn(5, par_n) if par_n else None)
    assert out.shape == (5,)
    assert (net.demo_mlp is not None) == (demo_n > 0)
    assert (net.param_mlp is not None) == (par_n > 0)


def test_missing_branch_input_is_an_error():
    net = ElvmassNet(ElvmassNetConfig(channels=(4,)))
    with pytest.raises(ValueError, match="demographics"):
        net(torch.zeros(2, 12, 50), None, torch.zeros(2, 4))


def test_grouped_input_equals_whole_view():
    cfg = ElvmassNetConfig(lead_groups=((0, 1, 2, 3, 4, 5), (6, 7, 8, 9, 10, 11)), channels=(4, 4))
    net = ElvmassNet(cfg).eval()
    x = torch.randn(3, 12, 80)
    d, p = torch.randn(3, 4), torch.randn(3, 4)
    whole = net(x, d, p)
    grouped = net([x[:, :6], x[:, 6:]], d, p)
    assert torch.allclose(whole, grouped)


def test_group_order_matters_for_the_model():
    """Leads reach their own group's encoder: swapping limb and precordial leads changes the output."""
    net = ElvmassNet(ElvmassNetConfig(channels=(4, 4), demographic_inputs=(), param_inputs=())).eval()
    x = torch.randn(2, 12, 80)
    swapped = torch.cat([x[:, 6:], x[:, :6]], dim=1)
    assert not torch.allclose(net(x), net(swapped))


def test_config_round_trip_and_seeded_init():
    cfg = ElvmassNetConfig(channels=(8, 16), kernel_size=3, seed=3, param_inputs=("qrs_ms",))
    again = ElvmassNetConfig.from_dict(cfg.to_dict())
    assert again == cfg
    a, b = ElvmassNet(cfg), ElvmassNet(again)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert count_parameters(a) > 0


def test_config_validation():
    with pytest.raises(ValueError, match="lead indices"):
        ElvmassNetConfig(lead_groups=((0, 12),))
    with pytest.raises(ValueError, match="unknown scalar"):
        ElvmassNetConfig(param_inputs=("qt_ms",))
    with pytest.raises(ValueError, match="inputs must be one of"):
        ElvmassNetConfig.for_inputs("ecg+everything")


def test_demographic_features_bmi_bsa():
    df = pd.DataFrame({"age_years": [60], "sex": ["F"], "height_cm": [170.0], "weight_kg": [70.0]})
    f = demographic_features(df)[0]
    assert f[1] == 0.0
    assert f[4] == pytest.approx(70 / 1.7**2)
    assert f[5] == pytest.approx(1.818, abs=1e-3)  # Mosteller, as elvmass.cohort.bsa_m2


def test_demographics_regressor_learns_body_size():
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"age_years": rng.uniform(30, 80, n), "sex": rng.choice(["M", "F"], n),
                       "height_cm": rng.normal(170, 9, n), "weight_kg": rng.normal(75, 12, n)})
    y = 40 + 1.2 * df["weight_kg"] + np.where(df["sex"] == "M", 25, 0) + rng.normal(0, 5, n)
    model = DemographicsRegressor().fit(df.iloc[:300], y[:300])
    err = np.abs(model.predict(df.iloc[300:]) - y[300:]).mean()
    baseline = np.abs(y[300:] - np.median(y[:300])).mean()
    assert err < 0.5 * baseline
    # missing demographics are allowed (trees route NaN)
    assert np.isfinite(model.predict(df.iloc[:2].assign(height_cm=np.nan))).all()


def test_fast_dropout_is_inverted_dropout_seeded_by_torch_and_keeps_the_layout():
    import torch

    from elvmass.models.dropout import FastDropout

    def run(seed):
        torch.manual_seed(seed)
        drop = FastDropout(0.1).train()
        x = torch.ones(64, 32, 1, 56).contiguous(memory_format=torch.channels_last).requires_grad_()
        y = drop(x)
        y.sum().backward()
        return x, y

    x, y = run(0)
    kept = y != 0
    assert abs(1 - float(kept.float().mean()) - 0.1) < 0.005       # p honoured (114,688 draws)
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9))  # survivors scaled by 1/(1-p)
    assert torch.equal(x.grad, kept.float() / 0.9)                   # the gradient goes through the same mask
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(run(0)[1], y) and not torch.equal(run(1)[1], y)  # torch.manual_seed fixes the masks
    with pytest.raises(ValueError, match="dropout probability"):
        FastDropout(1.0)
