"""Model bundles: `elvmass train` writes safetensors + JSON with hashes; loading verifies them,
never unpickles, and gives the same predictions as the trained networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from elvmass.bundle import BundleError, load_bundle, save_bundle, verify_bundle
from elvmass.features import FeatureScaler
from elvmass.models.elvmassnet import ElvmassNet, ElvmassNetConfig


# ``trained_bundle``: the session's bundle trained through the CLI (tests/conftest.py)


def test_bundle_layout_and_config(trained_bundle):
    assert sorted(p.name for p in trained_bundle.iterdir() if p.is_dir()) == []  # no cache inside the bundle
    assert (trained_bundle.parent / ".elvmass-cache").is_dir()  # it sits beside the manifest instead
    files = sorted(p.name for p in trained_bundle.iterdir() if p.is_file())
    assert files == ["bundle.json", "elvmassnet.safetensors", "elvmassnet_female.safetensors",
                     "elvmassnet_male.safetensors", "hashes.json", "model_card.md"]
    cfg = json.loads((trained_bundle / "bundle.json").read_text())
    assert cfg["format"] == "elvmass-model-bundle"
    assert cfg["signal"]["view"] == "single_beat" and cfg["lead_grouping"] == "electrical"
    assert cfg["elvmass_version"]
    m = cfg["models"]["elvmassnet_female"]
    assert m["sex"] == "F"
    assert m["family"] == "elvmassnet" and m["spec"]["signal"]["view"] == "single_beat"
    assert set(m["state"]["scaler"]["medians"]) == {"age_years", "sex_male", "height_cm", "weight_kg", "qrs_ms", "p_axis_deg",
                                           "r_axis_deg", "t_axis_deg"}
    assert m["state"]["scaler"]["medians"]["sex_male"] == 0.0  # the female model saw only women
    assert m["spec"]["net"]["lead_groups"] == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    assert cfg["training_cohort"]["n"] > 40
    assert cfg["training_cohort"]["by_sex"]["F"]["n"] + cfg["training_cohort"]["by_sex"]["M"]["n"] == cfg["training_cohort"]["n"]


def test_load_verifies_and_never_unpickles(trained_bundle, monkeypatch):
    import pickle

    def no_pickle(*a, **k):
        raise AssertionError("a bundle must never be unpickled")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    b = load_bundle(trained_bundle)
    assert b.model_names == ["elvmassnet", "elvmassnet_female", "elvmassnet_male"]
    assert b.model_for_sex("M") == "elvmassnet_male" and b.model_for_sex(None) == "elvmassnet"


def test_tampered_file_is_refused(trained_bundle, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(trained_bundle, copy)
    data = bytearray((copy / "elvmassnet_male.safetensors").read_bytes())
    data[-1] ^= 0x01
    (copy / "elvmassnet_male.safetensors").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="elvmassnet_male.safetensors: SHA-256 does not match"):
        load_bundle(copy)
    # the config is covered too
    shutil.rmtree(copy)
    shutil.copytree(trained_bundle, copy)
    cfg = json.loads((copy / "bundle.json").read_text())
    cfg["models"]["elvmassnet"]["state"]["scaler"]["target_mean_g"] = 999.0
    (copy / "bundle.json").write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match="bundle.json: SHA-256"):
        verify_bundle(copy)
    # and a missing file
    (copy / "elvmassnet.safetensors").unlink()
    with pytest.raises(BundleError, match="missing"):
        verify_bundle(copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nope")
    with pytest.raises(BundleError, match="hashes.json missing"):
        load_bundle(tmp_path)


def test_round_trip_gives_identical_outputs(tmp_path):
    from elvmass.signal.config import SignalConfig

    cfg = ElvmassNetConfig(channels=(8, 8), weight_norm=True)
    net = ElvmassNet(cfg).eval()
    scaler = FeatureScaler(medians={k: 1.0 for k in cfg.demographic_inputs + cfg.param_inputs},
                           means={k: 0.0 for k in cfg.demographic_inputs + cfg.param_inputs},
                           sds={k: 1.0 for k in cfg.demographic_inputs + cfg.param_inputs},
                           target_mean_g=150.0, target_sd_g=30.0)
    from elvmass.models.elvmassnet_spec import ElvmassNetSpec, FittedElvmassNet

    spec = ElvmassNetSpec(name="elvmassnet", signal=SignalConfig(), net=cfg)
    save_bundle(tmp_path / "b", signal_config=SignalConfig(), models={"elvmassnet": FittedElvmassNet(spec, net, scaler, info={"n_train": 1})})
    b = load_bundle(tmp_path / "b")
    x, d, p = torch.randn(3, 12, 225), torch.randn(3, 4), torch.randn(3, 4)
    with torch.no_grad():
        assert torch.allclose(net(x, d, p), b.models["elvmassnet"](x, d, p))
    assert b.scalers["elvmassnet"].to_dict() == scaler.to_dict()
    assert np.isclose(b.lvh_cutoffs["M"], 72.0)


def test_onnx_export_matches_torch_and_is_hash_checked(trained_bundle, tmp_path):
    import shutil

    from elvmass.bundle import export_onnx

    copy = tmp_path / "model"
    shutil.copytree(trained_bundle, copy)
    written = export_onnx(copy)
    assert sorted(p.name for p in written) == ["elvmassnet.onnx", "elvmassnet_female.onnx", "elvmassnet_male.onnx"]
    tb, ob = load_bundle(copy), load_bundle(copy, engine="onnx")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.5, (4, 12, tb.signal_config.view_length)).astype(np.float32)
    d, p = rng.normal(size=(4, 4)).astype(np.float32), rng.normal(size=(4, 4)).astype(np.float32)
    for name in tb.model_names:
        assert np.allclose(tb.run(name, x, d, p), ob.run(name, x, d, p), atol=1e-5)
    data = bytearray((copy / "elvmassnet.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "elvmassnet.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="elvmassnet.onnx: SHA-256"):
        load_bundle(copy, engine="onnx")
    with pytest.raises(BundleError, match="no ONNX export"):
        load_bundle(trained_bundle, engine="onnx")


def test_ecg_only_model_round_trip_and_onnx(tmp_path):
    from elvmass.bundle import export_onnx
    from elvmass.signal.config import SignalConfig

    cfg = ElvmassNetConfig.for_inputs("ecg", channels=(4, 4))
    net = ElvmassNet(cfg).eval()
    scaler = FeatureScaler(demographic_inputs=(), param_inputs=(), target_mean_g=120.0, target_sd_g=25.0)
    from elvmass.models.elvmassnet_spec import ElvmassNetSpec, FittedElvmassNet

    spec = ElvmassNetSpec(name="elvmassnet", signal=SignalConfig(), net=cfg)
    save_bundle(tmp_path / "b", signal_config=SignalConfig(), models={"elvmassnet": FittedElvmassNet(spec, net, scaler)})
    export_onnx(tmp_path / "b")
    x = np.random.default_rng(1).normal(size=(2, 12, 225)).astype(np.float32)
    empty = np.zeros((2, 0), np.float32)
    a = load_bundle(tmp_path / "b").run("elvmassnet", x, empty, empty)
    b = load_bundle(tmp_path / "b", engine="onnx").run("elvmassnet", x, empty, empty)
    assert np.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("hashes_text", ['{"files": ["bundle.json"]}', '["bundle.json"]', '{"files": {"bundle.json": 5}}',
                                         '{"algorithm": "sha256"}', "not json"])
def test_malformed_hash_list_is_one_bundle_error(trained_bundle, tmp_path, hashes_text):
    """A damaged hashes.json is refused with BundleError (one line in the CLI), never an AttributeError traceback."""
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(trained_bundle, copy)
    (copy / "hashes.json").write_text(hashes_text)
    with pytest.raises(BundleError, match="hashes.json"):
        load_bundle(copy)


def test_hash_consistent_but_malformed_config_is_one_bundle_error(trained_bundle, tmp_path):
    """bundle.json rewritten with matching hashes (not tampering, e.g. a hand-edited bundle) but the wrong shape."""
    import hashlib
    import shutil

    for text in ("[1, 2]", '{"format": "elvmass-model-bundle", "format_version": 1, "models": []}',
                 '{"format": "elvmass-model-bundle", "format_version": 1, "signal": {}, "models": {"elvmassnet": 3}}'):
        copy = tmp_path / "model"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(trained_bundle, copy)
        (copy / "bundle.json").write_text(text)
        hashes = json.loads((copy / "hashes.json").read_text())
        hashes["files"]["bundle.json"] = hashlib.sha256(text.encode()).hexdigest()
        (copy / "hashes.json").write_text(json.dumps(hashes))
        with pytest.raises(BundleError):
            load_bundle(copy)
