"""Model bundles: the file format of trained models (safetensors arrays plus one JSON config), hash-checked.

A bundle is a folder::

    MODEL_DIR/
      bundle.json                     per model: its family and spec (signal view, architecture,
                                      training settings), its JSON state (e.g. normalisation
                                      statistics), the sex it serves; LVH cut-offs, the
                                      training-cohort summary, the elvmass version
      elvmassnet.safetensors          one array file per model (e.g. the model for both sexes and
      elvmassnet_male.safetensors     the sex-specific ones)
      elvmassnet*.onnx                optional ONNX exports (:func:`export_onnx`, ``elvmass train --onnx``)
      recalibration.json              optional local linear recalibration per model
                                      (``elvmass recalibrate``, :func:`write_recalibrated_bundle`)
      hashes.json                     SHA-256 of every file above

Any model family of :mod:`elvmass.models.base` whose fitted model gives ``state()`` can be stored.
Nothing is ever unpickled: arrays are read with ``safetensors`` and everything else is JSON.
:func:`load_bundle` recomputes every hash and refuses a bundle whose files do not match, naming the
file. Training the models that go into a bundle is :func:`elvmass.experiments.final.train_bundle`.

A bundle of one untrained, seeded network written by :func:`example_bundle` (:func:`save_bundle` at
its smallest), read back, then refused once a
byte of its weights has changed (``elvmass train`` writes ``elvmassnet``, ``elvmassnet_female`` and
``elvmassnet_male``):

    >>> import tempfile
    >>> from pathlib import Path
    >>> from elvmass.bundle import example_bundle, load_bundle
    >>> model_dir = example_bundle(Path(tempfile.mkdtemp()) / "model")
    >>> sorted(p.name for p in model_dir.iterdir())
    ['bundle.json', 'elvmassnet.safetensors', 'hashes.json']
    >>> b = load_bundle(model_dir)
    >>> b.model_names, b.model_for_sex("F"), b.signal_config.view_length
    (['elvmassnet'], 'elvmassnet', 225)
    >>> weights = model_dir / "elvmassnet.safetensors"
    >>> data = bytearray(weights.read_bytes()); data[-1] ^= 1; _ = weights.write_bytes(bytes(data))
    >>> try:
    ...     load_bundle(model_dir)
    ... except BundleError as exc:
    ...     print("refused:", "elvmassnet.safetensors" in str(exc))
    refused: True
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from elvmass.atomic import atomic_write
from elvmass.errors import ElvmassError
from elvmass.jsonable import to_jsonable

BUNDLE_FORMAT = "elvmass-model-bundle"
BUNDLE_FORMAT_VERSION = 2  # 2: any model family (spec + state); 1: eLVMass-Net only, still read
CONFIG_NAME = "bundle.json"
HASHES_NAME = "hashes.json"
RECALIBRATION_NAME = "recalibration.json"


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
    """A loaded bundle: per model name its fitted model (:class:`~elvmass.models.base.FittedModel`),
    the sex it serves, and the primary signal configuration (the one quality flags are read from)."""

    path: Path
    config: dict
    signal_config: object
    fitted: dict = field(default_factory=dict)  # name -> FittedModel
    sexes: dict = field(default_factory=dict)  # name -> "M" | "F" | None
    engine: str = "torch"
    recalibrations: dict = field(default_factory=dict)  # name -> LinearCalibration (elvmass recalibrate)

    @property
    def model_names(self) -> list[str]:
        return sorted(self.fitted)

    @property
    def models(self) -> dict:
        """name -> torch network, for the models that have one (eLVMass-Net)."""
        return {n: f.model for n, f in self.fitted.items() if hasattr(f, "model")}

    @property
    def scalers(self) -> dict:
        """name -> :class:`~elvmass.features.FeatureScaler`, for the models that have one."""
        return {n: f.scaler for n, f in self.fitted.items() if hasattr(f, "scaler")}

    def run(self, name: str, ecg, demographics, params):
        """Normalised output of a network model for a batch of already normalised arrays."""
        import numpy as np

        from elvmass.training import TensorData, predict_normalised

        f = self.fitted[name]
        t = TensorData(ecg, demographics, params, np.zeros(len(ecg), np.float32))
        return f._run_onnx(t) if f.onnx_session is not None else predict_normalised(f.model, t)

    @property
    def lvh_cutoffs(self) -> dict[str, float]:
        c = self.config.get("lvh_cutoffs", {"male_g_m2": 72.0, "female_g_m2": 55.0})
        return {"M": float(c["male_g_m2"]), "F": float(c["female_g_m2"])}

    def calibration(self, name: str):
        """The model's conformal calibration (:class:`elvmass.evaluate.conformal.Calibration`), or
        None when the bundle was trained without calibration rows (then no interval is given)."""
        from elvmass.evaluate.conformal import Calibration

        entry = (self.config.get("conformal") or {}).get(name)
        if not entry:
            return None
        try:
            return Calibration.from_dict(entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{self.path / CONFIG_NAME}: bad conformal calibration of {name!r} ({exc})") from exc

    def recalibration(self, name: str):
        """The model's local linear recalibration (:class:`elvmass.evaluate.recalibration.LinearCalibration`)
        that ``predict`` applies to its output, or None for a bundle that carries none."""
        return self.recalibrations.get(name)

    @property
    def interval_level(self) -> float:
        from elvmass.evaluate.conformal import DEFAULT_LEVEL

        levels = [e.get("level", DEFAULT_LEVEL) for e in (self.config.get("conformal") or {}).values()]
        return float(levels[0]) if levels else DEFAULT_LEVEL

    @property
    def model_card(self) -> str | None:
        """The bundle's ``model_card.md`` (hash-checked at load), or None for an older bundle."""
        f = self.path / "model_card.md"
        return f.read_text(encoding="utf-8") if f.is_file() else None

    def model_for_sex(self, sex: str | None) -> str:
        """The model trained for this sex when the bundle has one and sex is known, else the model
        for both sexes (``elvmassnet`` when there are several)."""
        if sex in ("M", "F"):
            for name in sorted(self.fitted):
                if self.sexes.get(name) == sex:
                    return name
        general = sorted(n for n in self.fitted if self.sexes.get(n) is None)
        if "elvmassnet" in general:
            return "elvmassnet"
        if general:
            return general[0]
        raise BundleError(f"{self.path}: the bundle has no model for sex {sex!r} and no model for both sexes")


def save_bundle(
    out_dir,
    *,
    signal_config,
    models: dict,
    cohort: dict | None = None,
    train_config: dict | None = None,
    lvh_cutoffs: dict | None = None,
    sexes: dict | None = None,
    extra: dict | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """Write a bundle. ``models``: name -> fitted model (its ``state()`` is saved); ``sexes``: name ->
    the sex a model serves (default: none, both sexes); ``extra``: more JSON-able top-level entries
    (e.g. ``conformal`` calibration); ``files``: text files to add (e.g. ``model_card.md``), hash-checked
    like the rest."""
    from safetensors.numpy import save_file

    from elvmass import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not models:
        raise BundleError("nothing to save: no trained models")
    sexes = sexes or {}
    entries = {}
    hashes = {}
    for name, fitted in sorted(models.items()):
        try:
            arrays, meta = fitted.state()
        except NotImplementedError as exc:
            raise BundleError(f"model {name!r} cannot be saved in a bundle: {exc}") from exc
        fname = f"{name}.safetensors"
        arrays = {k: v for k, v in arrays.items()}
        atomic_write(out / fname, lambda tmp, a=arrays: save_file(a, str(tmp), metadata={"format": BUNDLE_FORMAT, "model": name}))
        hashes[fname] = sha256_file(out / fname)
        entries[name] = {"family": fitted.spec.family, "spec": fitted.spec.to_dict(), "weights": fname, "state": meta,
                         "sex": sexes.get(name), "training": dict(getattr(fitted, "info", {}) or {})}
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
        **(extra or {}),
    }
    for fname, body in (files or {}).items():
        if Path(fname).name != fname or fname in (CONFIG_NAME, HASHES_NAME):
            raise BundleError(f"bad bundle file name {fname!r}")
        atomic_write(out / fname, lambda tmp, b=body: tmp.write_text(b, encoding="utf-8"))
        hashes[fname] = sha256_file(out / fname)
    text = json.dumps(to_jsonable(config), indent=2, allow_nan=False)
    atomic_write(out / CONFIG_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    hashes[CONFIG_NAME] = sha256_file(out / CONFIG_NAME)
    htext = json.dumps({"algorithm": "sha256", "files": hashes}, indent=2)
    atomic_write(out / HASHES_NAME, lambda tmp: tmp.write_text(htext, encoding="utf-8"))
    return out


def example_bundle(path) -> Path:
    """Write a bundle of one untrained eLVMass-Net (8 + 8 channels, weights from seed 0, a scaler fitted
    on two made-up patients) to ``path`` and return its folder: :func:`save_bundle` at its smallest, what
    the doctests of this module and of :mod:`elvmass.predict` read. Its masses are numbers, not estimates."""
    import pandas as pd
    import torch

    from elvmass.features import FeatureScaler
    from elvmass.models.elvmassnet import ElvmassNet, ElvmassNetConfig
    from elvmass.models.elvmassnet_spec import ElvmassNetSpec, FittedElvmassNet
    from elvmass.signal import SignalConfig

    with torch.random.fork_rng(devices=[]):  # the same weights every call, the caller's RNG untouched
        torch.manual_seed(0)
        net = ElvmassNet(ElvmassNetConfig(channels=(8, 8), head_hidden=(16,)))
    scaler = FeatureScaler.fit(pd.DataFrame({"age_years": [50.0, 70.0], "sex_male": [1.0, 0.0],
                                             "height_cm": [170.0, 160.0], "weight_kg": [80.0, 60.0]}),
                               [150.0, 110.0])
    spec = ElvmassNetSpec(name="elvmassnet", signal=SignalConfig(), net=net.config)
    return save_bundle(Path(path), signal_config=SignalConfig(),
                       models={"elvmassnet": FittedElvmassNet(spec, net, scaler)})


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
        raise BundleError(f"{path / CONFIG_NAME}: no models listed (expected \"models\": {{name: {{family, spec, weights}}}})")
    version = config.get("format_version", 0)
    if not isinstance(version, int):
        raise BundleError(f"{path / CONFIG_NAME}: format_version must be an integer, got {version!r}")
    if version > BUNDLE_FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {config.get('format_version')} is newer than this elvmass supports "
                          f"({BUNDLE_FORMAT_VERSION}); upgrade elvmass")
    recal = config.get("recalibration")
    if recal is not None and (not isinstance(recal, dict) or recal.get("file") not in recorded):
        raise BundleError(f"{path}: the recalibration file of this bundle is not covered by {HASHES_NAME}")
    for name, entry in models.items():
        for key in ("weights", "onnx"):
            if (key == "weights" or entry.get(key)) and entry.get(key) not in recorded:
                raise BundleError(f"{path}: {key} of model {name!r} are not covered by {HASHES_NAME}")
    return config


def _entry_spec(name: str, entry: dict, config: dict):
    """The spec of one model entry; format 1 entries (eLVMass-Net only) are read as such."""
    from elvmass.models.base import spec_from_dict

    if "spec" in entry:
        return spec_from_dict(entry["spec"]), entry.get("state", {})
    from elvmass.models.elvmassnet import ElvmassNetConfig
    from elvmass.models.elvmassnet_spec import ElvmassNetSpec
    from elvmass.signal.config import SignalConfig

    spec = ElvmassNetSpec(name=name, signal=SignalConfig.from_dict(config["signal"]), net=ElvmassNetConfig.from_dict(entry["net"]))
    return spec, {"scaler": entry["scaler"], "info": entry.get("training", {})}


def load_bundle(path, *, engine: str = "torch") -> Bundle:
    """Verify and load a bundle (safetensors arrays, JSON config; never unpickles).

    ``engine="onnx"`` runs the network models with onnxruntime from the ONNX files written by
    :func:`export_onnx` (hash-checked like the rest).
    """
    if engine not in ("torch", "onnx"):
        raise BundleError(f"engine must be 'torch' or 'onnx', got {engine!r}")
    from safetensors.numpy import load_file

    from elvmass.signal.config import SignalConfig

    path = Path(path)
    config = verify_bundle(path)
    try:
        signal = SignalConfig.from_dict(config["signal"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path / CONFIG_NAME}: bad signal config ({exc})") from exc
    bundle = Bundle(path, config, signal, engine=engine)
    for name, entry in config["models"].items():
        try:
            spec, state = _entry_spec(name, entry, config)
            fitted = type(spec).load_fitted(spec, load_file(str(path / entry["weights"])), state)
        except (KeyError, TypeError, ValueError, RuntimeError, NotImplementedError) as exc:
            detail = " ".join(str(exc).split())  # torch lists every mismatched tensor on its own line
            detail = detail if len(detail) <= 240 else detail[:237] + "..."
            raise BundleError(f"{path / entry.get('weights', name)}: cannot load model {name!r} ({detail}); "
                              "it may come from another elvmass version: retrain it with `elvmass train`") from exc
        if engine == "onnx":
            if not entry.get("onnx"):
                raise BundleError(f"{path}: model {name!r} has no ONNX export; run `elvmass train --onnx` or use the torch engine")
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 2
            fitted.onnx_session = ort.InferenceSession(str(path / entry["onnx"]), opts, providers=["CPUExecutionProvider"])
        bundle.fitted[name] = fitted
        bundle.sexes[name] = entry.get("sex")
    if config.get("recalibration"):
        bundle.recalibrations = _load_recalibrations(path, config, set(bundle.fitted))
    return bundle


def _load_recalibrations(path: Path, config: dict, names: set) -> dict:
    from elvmass.evaluate.recalibration import LinearCalibration

    f = path / config["recalibration"]["file"]
    try:
        entries = json.loads(f.read_text(encoding="utf-8"))["models"]
        out = {str(n): LinearCalibration.from_dict(e) for n, e in entries.items()}
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{f}: bad recalibration ({exc})") from exc
    unknown = sorted(set(out) - names)
    if unknown:
        raise BundleError(f"{f}: recalibration of model(s) not in the bundle: {', '.join(unknown)}")
    return out


def write_recalibrated_bundle(src, out_dir, recalibrations: dict, info: dict | None = None) -> Path:
    """A copy of bundle ``src`` in ``out_dir`` that carries ``recalibrations`` (model name ->
    :class:`~elvmass.evaluate.recalibration.LinearCalibration`) in ``recalibration.json``, recorded in
    ``bundle.json`` and covered by ``hashes.json`` like every other file, so a changed calibration is refused
    at load. ``info`` (JSON-able: where the local cases came from) goes into ``bundle.json``."""
    import shutil

    src, out = Path(src), Path(out_dir)
    config = verify_bundle(src)
    hashes = json.loads((src / HASHES_NAME).read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    for fname in hashes["files"]:
        if fname not in (CONFIG_NAME, RECALIBRATION_NAME, "model_card.md"):
            atomic_write(out / fname, lambda tmp, f=fname: shutil.copyfile(src / f, tmp))
    if "model_card.md" in hashes["files"]:  # the card says the outputs are no longer the trained model's own
        lines = [f"- `{n}`: lvm_g = {c.pooled[0]:.2f} g + {c.pooled[1]:.4f} x model output (n = {c.n})"
                 for n, c in sorted(recalibrations.items())]
        card = (src / "model_card.md").read_text(encoding="utf-8").rstrip() + (
            "\n\n## Local recalibration\n\nThis bundle maps every model's output through a linear recalibration fitted "
            f"on local labelled cases ({RECALIBRATION_NAME}; `elvmass recalibrate`):\n\n" + "\n".join(lines)
            + "\n\nPrediction intervals are the training site's, mapped through the same line (not re-calibrated).\n")
        atomic_write(out / "model_card.md", lambda tmp: tmp.write_text(card, encoding="utf-8"))
    body = json.dumps(to_jsonable({"method": "linear: lvm_g = intercept_g + slope * predicted",
                                   "models": {n: c.to_dict() for n, c in sorted(recalibrations.items())}}),
                      indent=2, allow_nan=False)
    atomic_write(out / RECALIBRATION_NAME, lambda tmp: tmp.write_text(body, encoding="utf-8"))
    config = dict(config)
    config["recalibration"] = {"file": RECALIBRATION_NAME, "recalibrated_from": str(src),
                               "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **(info or {})}
    text = json.dumps(to_jsonable(config), indent=2, allow_nan=False)
    atomic_write(out / CONFIG_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    files = {f: (sha256_file(out / f) if f == "model_card.md" else h) for f, h in hashes["files"].items()
             if f not in (CONFIG_NAME, RECALIBRATION_NAME)}
    files[RECALIBRATION_NAME] = sha256_file(out / RECALIBRATION_NAME)
    files[CONFIG_NAME] = sha256_file(out / CONFIG_NAME)
    htext = json.dumps({"algorithm": "sha256", "files": files}, indent=2)
    atomic_write(out / HASHES_NAME, lambda tmp: tmp.write_text(htext, encoding="utf-8"))
    return out


def export_onnx(path) -> list[Path]:
    """Add an ONNX export of every network model to a bundle (fast CPU inference with onnxruntime).

    The ONNX files are recorded in ``bundle.json`` and covered by ``hashes.json`` like the weights.
    """
    path = Path(path)
    bundle = load_bundle(path)
    config = bundle.config
    written = []
    for name, fitted in bundle.fitted.items():
        if not hasattr(fitted, "export_onnx"):
            continue
        fname = f"{name}.onnx"
        atomic_write(path / fname, lambda tmp, f=fitted: f.export_onnx(tmp))
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
