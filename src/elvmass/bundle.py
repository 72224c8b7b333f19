"""Model bundles: trained eLVMass-Net weights (safetensors) plus one JSON config, hash-checked.

A bundle is a folder::

    MODEL_DIR/
      bundle.json                     preprocessing (SignalConfig), lead grouping, inputs, architecture,
                                      per-model normalisation statistics and imputation medians,
                                      LVH cut-offs, training-cohort summary, elvmass version
      elvmassnet.safetensors          the model for both sexes
      elvmassnet_male.safetensors     sex-specific models (when trained)
      elvmassnet_female.safetensors
      elvmassnet*.onnx                optional ONNX exports (:func:`export_onnx`, ``elvmass train --onnx``)
      hashes.json                     SHA-256 of every file above

Nothing is ever unpickled: weights are read with ``safetensors`` and everything else is JSON.
:func:`load_bundle` recomputes every hash and refuses a bundle whose files do not match,
naming the file. The demographics-only comparator is a study comparator and is not saved.

    >>> from elvmass.bundle import load_bundle  # doctest: +SKIP
    >>> b = load_bundle("model/")  # doctest: +SKIP
    >>> b.model_names  # doctest: +SKIP
    ['elvmassnet', 'elvmassnet_female', 'elvmassnet_male']
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from elvmass.atomic import atomic_write
from elvmass.errors import ElvmassError
from elvmass.jsonable import to_jsonable
from elvmass.features import FeatureScaler
from elvmass.models.elvmassnet import ElvmassNet, ElvmassNetConfig

BUNDLE_FORMAT = "elvmass-model-bundle"
BUNDLE_FORMAT_VERSION = 1
CONFIG_NAME = "bundle.json"
HASHES_NAME = "hashes.json"


class BundleError(ElvmassError):
    """A model bundle is missing, incomplete, tampered with, or from an incompatible version."""


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Bundle:
    """A loaded bundle: the signal config, and per model its network (eval mode) and scaler."""

    path: Path
    config: dict
    signal_config: object
    models: dict[str, ElvmassNet] = field(default_factory=dict)
    scalers: dict[str, FeatureScaler] = field(default_factory=dict)
    engine: str = "torch"
    sessions: dict = field(default_factory=dict)  # name -> onnxruntime.InferenceSession (engine "onnx")

    def run(self, name: str, ecg, demographics, params):
        """Normalised model output for a batch of numpy arrays, with the bundle's engine."""
        import numpy as np

        ecg = np.ascontiguousarray(ecg, np.float32)
        demographics = np.ascontiguousarray(demographics, np.float32)
        params = np.ascontiguousarray(params, np.float32)
        if self.engine == "onnx":
            sess = self.sessions[name]
            feeds = {"ecg": ecg}
            names = {i.name for i in sess.get_inputs()}
            if "demographics" in names:
                feeds["demographics"] = demographics
            if "params" in names:
                feeds["params"] = params
            return sess.run(None, feeds)[0].reshape(-1)
        import torch

        with torch.no_grad():
            net = self.models[name]
            d = torch.from_numpy(demographics) if net.demo_mlp is not None else None
            p = torch.from_numpy(params) if net.param_mlp is not None else None
            return net(torch.from_numpy(ecg), d, p).numpy().reshape(-1)

    @property
    def model_names(self) -> list[str]:
        return sorted(self.models)

    @property
    def lvh_cutoffs(self) -> dict[str, float]:
        c = self.config.get("lvh_cutoffs", {"male_g_m2": 72.0, "female_g_m2": 55.0})
        return {"M": float(c["male_g_m2"]), "F": float(c["female_g_m2"])}

    def model_for_sex(self, sex: str | None) -> str:
        """The sex-specific model when the bundle has it and sex is known, else ``elvmassnet``."""
        name = {"M": "elvmassnet_male", "F": "elvmassnet_female"}.get(sex or "", "elvmassnet")
        if name in self.models:
            return name
        if "elvmassnet" in self.models:
            return "elvmassnet"
        raise BundleError(f"{self.path}: the bundle has no model for sex {sex!r} and no elvmassnet model")


def save_bundle(
    out_dir,
    *,
    signal_config,
    models: dict[str, tuple[ElvmassNet, FeatureScaler, dict]],
    cohort: dict | None = None,
    train_config: dict | None = None,
    lvh_cutoffs: dict | None = None,
) -> Path:
    """Write a bundle. ``models``: name -> (network, scaler, training info such as n, best epoch)."""
    from safetensors.torch import save_file

    from elvmass import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not models:
        raise BundleError("nothing to save: no trained models")
    entries = {}
    hashes = {}
    for name, (net, scaler, info) in sorted(models.items()):
        fname = f"{name}.safetensors"
        state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
        atomic_write(out / fname, lambda tmp, s=state: save_file(s, tmp, metadata={"format": BUNDLE_FORMAT, "model": name}))
        hashes[fname] = sha256_file(out / fname)
        entries[name] = {"weights": fname, "net": net.config.to_dict(), "scaler": scaler.to_dict(),
                         "sex": {"elvmassnet_male": "M", "elvmassnet_female": "F"}.get(name), "training": info}
    config = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "elvmass_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "signal": signal_config.to_dict(),
        "lead_grouping": signal_config.lead_grouping,
        "train": train_config or {},
        "lvh_cutoffs": lvh_cutoffs or {"male_g_m2": 72.0, "female_g_m2": 55.0},
        "training_cohort": cohort or {},
        "models": entries,
    }
    text = json.dumps(to_jsonable(config), indent=2, allow_nan=False)
    atomic_write(out / CONFIG_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    hashes[CONFIG_NAME] = sha256_file(out / CONFIG_NAME)
    htext = json.dumps({"algorithm": "sha256", "files": hashes}, indent=2)
    atomic_write(out / HASHES_NAME, lambda tmp: tmp.write_text(htext, encoding="utf-8"))
    return out


def verify_bundle(path) -> dict:
    """Check every recorded SHA-256; returns the parsed ``bundle.json``. Raises :class:`BundleError`."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: model bundle folder not found")
    hpath = path / HASHES_NAME
    if not hpath.is_file():
        raise BundleError(f"{path}: not a model bundle ({HASHES_NAME} missing)")
    try:
        recorded = json.loads(hpath.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{hpath}: unreadable hash list ({exc})") from exc
    if not isinstance(recorded, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in recorded.items()):
        raise BundleError(f"{hpath}: unreadable hash list (expected \"files\": {{file name: SHA-256 hex digest}})")
    if CONFIG_NAME not in recorded:
        raise BundleError(f"{hpath}: {CONFIG_NAME} is not covered by the hash list")
    for fname, digest in recorded.items():
        f = path / fname
        if Path(fname).name != fname:
            raise BundleError(f"{hpath}: unexpected path {fname!r} in the hash list")
        if not f.is_file():
            raise BundleError(f"{f}: file listed in {HASHES_NAME} is missing")
        actual = sha256_file(f)
        if actual != digest:
            raise BundleError(f"{f}: SHA-256 does not match the recorded hash (file changed or corrupt); refusing to load")
    try:
        config = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BundleError(f"{path / CONFIG_NAME}: invalid JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path / CONFIG_NAME}: not an elvmass model bundle")
    models = config.get("models")
    if not isinstance(models, dict) or not models or not all(isinstance(e, dict) for e in models.values()):
        raise BundleError(f"{path / CONFIG_NAME}: no models listed (expected \"models\": {{name: {{weights, net, scaler}}}})")
    version = config.get("format_version", 0)
    if not isinstance(version, int):
        raise BundleError(f"{path / CONFIG_NAME}: format_version must be an integer, got {version!r}")
    if version > BUNDLE_FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {config.get('format_version')} is newer than this elvmass supports "
                          f"({BUNDLE_FORMAT_VERSION}); upgrade elvmass")
    for name, entry in models.items():
        for key in ("weights", "onnx"):
            if (key == "weights" or entry.get(key)) and entry.get(key) not in recorded:
                raise BundleError(f"{path}: {key} of model {name!r} are not covered by {HASHES_NAME}")
    return config


def load_bundle(path, *, engine: str = "torch") -> Bundle:
    """Verify and load a bundle (safetensors weights, JSON config; never unpickles).

    ``engine="onnx"`` runs the models with onnxruntime from the ONNX files written by
    :func:`export_onnx` (hash-checked like the rest).
    """
    if engine not in ("torch", "onnx"):
        raise BundleError(f"engine must be 'torch' or 'onnx', got {engine!r}")
    from safetensors.torch import load_file

    from elvmass.signal.config import SignalConfig

    path = Path(path)
    config = verify_bundle(path)
    try:
        signal = SignalConfig.from_dict(config["signal"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path / CONFIG_NAME}: bad signal config ({exc})") from exc
    bundle = Bundle(path, config, signal, engine=engine)
    for name, entry in config["models"].items():
        if engine == "onnx":
            if not entry.get("onnx"):
                raise BundleError(f"{path}: model {name!r} has no ONNX export; run `elvmass train --onnx` or use the torch engine")
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 2
            bundle.sessions[name] = ort.InferenceSession(str(path / entry["onnx"]), opts, providers=["CPUExecutionProvider"])
        try:
            net = ElvmassNet(ElvmassNetConfig.from_dict(entry["net"]))
            net.load_state_dict(load_file(str(path / entry["weights"])))
            scaler = FeatureScaler.from_dict(entry["scaler"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise BundleError(f"{path / entry.get('weights', name)}: cannot load model {name!r} ({exc})") from exc
        net.eval()
        bundle.models[name] = net
        bundle.scalers[name] = scaler
    return bundle


def export_onnx(path) -> list[Path]:
    """Add an ONNX export of every model to a bundle (for fast CPU inference with onnxruntime).

    The ONNX files are recorded in ``bundle.json`` and covered by ``hashes.json`` like the weights.
    Inputs: ``ecg`` (B, 12, L) float32 and, where the model uses them, ``demographics`` (B, d) and
    ``params`` (B, p), already normalised; output ``lvm_normalised`` (B,).
    """
    import warnings

    import torch

    path = Path(path)
    bundle = load_bundle(path)
    config = bundle.config
    length = bundle.signal_config.view_length
    written = []
    for name, net in bundle.models.items():
        cfg = net.config
        args = [torch.zeros(1, 12, length)]
        names = ["ecg"]
        if cfg.demographic_inputs:
            args.append(torch.zeros(1, len(cfg.demographic_inputs)))
            names.append("demographics")
        else:
            args.append(None)
        if cfg.param_inputs:
            args.append(torch.zeros(1, len(cfg.param_inputs)))
            names.append("params")
        fname = f"{name}.onnx"
        axes = {n: {0: "batch"} for n in names + ["lvm_normalised"]}

        def write(tmp, net=net, args=tuple(args), names=names, axes=axes):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(net, args, tmp, input_names=names, output_names=["lvm_normalised"],
                                  dynamic_axes=axes, dynamo=False, opset_version=17)

        atomic_write(path / fname, write)
        config["models"][name]["onnx"] = fname
        written.append(path / fname)
    text = json.dumps(to_jsonable(config), indent=2, allow_nan=False)
    atomic_write(path / CONFIG_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    hashes = json.loads((path / HASHES_NAME).read_text(encoding="utf-8"))
    for f in written + [path / CONFIG_NAME]:
        hashes["files"][f.name] = sha256_file(f)
    htext = json.dumps(hashes, indent=2)
    atomic_write(path / HASHES_NAME, lambda tmp: tmp.write_text(htext, encoding="utf-8"))
    return written


def train_bundle(manifest, out_dir, preset="paper", *, sex_specific: bool = True, cache_dir=None,
                 progress: bool = True, log=None) -> Path:
    """Fit the final models on the whole cohort (about 10 % held out for early stopping) and save them.

    Trains ``elvmassnet`` and, with ``sex_specific``, ``elvmassnet_male`` and ``elvmassnet_female``.
    """
    from elvmass.evaluate.splits import Split, train_val_split
    from elvmass.evaluate.study import (
        cohort_features_for, cohort_summary, default_cache_dir, fit_net_fold, load_study_manifest, make_preset,
    )

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if isinstance(preset, str):
        preset = make_preset(preset)
    preset = preset.with_progress(progress)
    df, n_invalid = load_study_manifest(manifest)
    features = cohort_features_for(df, preset, cache_dir if cache_dir is not None else default_cache_dir(manifest, out_dir))
    if len(features.manifest) < 20:
        raise BundleError(f"only {len(features.manifest)} usable ECG-LVM pairs; need at least 20 to train")
    names = ["elvmassnet", "elvmassnet_male", "elvmassnet_female"] if sex_specific else ["elvmassnet"]
    trained = {}
    for name in names:
        sex = {"elvmassnet_male": "M", "elvmassnet_female": "F"}.get(name)
        tr, va = train_val_split(features.manifest, preset.val_fraction, sex=sex)
        if len(tr) < 10 or len(va) < 2:
            if log is not None:
                log(f"{name}: skipped, too few cases ({len(tr)} train, {len(va)} validation)")
            continue
        net, scaler, res, _ = fit_net_fold(features, Split(-1, tr, va, va[:0]), preset, description=f"{name} final")
        info = {"n_train": int(len(tr)), "n_val": int(len(va)), "best_epoch": res.best_epoch,
                "val_mae_g": round(res.best_val_mae_g, 3), "epochs_run": len(res.history)}
        trained[name] = (net, scaler, info)
        if log is not None:
            log(f"{name}: {len(tr)} train / {len(va)} validation, best epoch {res.best_epoch}, "
                f"val MAE {res.best_val_mae_g:.1f} g ({res.elapsed_s:.0f} s)")
    path = save_bundle(out_dir, signal_config=preset.signal, models=trained, cohort=cohort_summary(features.manifest),
                       train_config={"preset": preset.to_dict(), "n_dropped_ecgs": len(features.dropped),
                                     "n_dropped_rows": int(n_invalid), "elapsed_s": round(time.perf_counter() - t0, 1)})
    return path
