"""Old vs new training code on the same manifest (issue 18 item 3): per fold, the one-model
eLVMass-Net's test MAE, epochs and time, one JSON line each, appended to OUT as it goes, so a
run cut short still gives paired folds. Run it once per code version, in parallel if you like:

    git archive 786d645 src | tar -x -C /tmp/old          # the training code before issue 18
    nice python benchmarks/train_accuracy_ab.py /tmp/old/src old ab.jsonl MANIFEST CACHE paper
    nice python benchmarks/train_accuracy_ab.py src new ab.jsonl MANIFEST CACHE paper onecycle:12

Each config is ``paper`` (the preset as is), ``SCHEDULE:EPOCHS`` (the paper preset with those
two changed), or comma-separated ``KEY=VALUE`` changes of the paper preset: any field of its
``TrainConfig`` (``batch_size=128,lr=0.003``, ``bf16=true``) or of its ``ElvmassNetConfig`` (``kernel_size=3``,
``channels=24/24/24/24``), or ``out_fs_hz`` of its signal (``out_fs_hz=125``, the
features then computed for that rate; new code only). Since 2 Dec 2026 the paper preset's beat is at
125 Hz, so today's 250-Hz row of the README is ``out_fs_hz=250``. The ``old`` run also writes the demographics comparator's per-fold MAE, for the
paired test. Uses the study protocol (``elvmass.experiments.study``, or ``elvmass.evaluate.study`` before it) (sorted-every-fifth folds, seed =
preset seed + fold); not a timed check, a measurement.
"""

import dataclasses
import json
import sys
import time

src, tag, out, manifest, cache = sys.argv[1:6]
configs = sys.argv[6:] or ["paper"]
sys.path.insert(0, src)
import numpy as np  # noqa: E402

from elvmass.evaluate.metrics import mae_g  # noqa: E402
from elvmass.evaluate.splits import make_splits  # noqa: E402
from elvmass.models.demographics import DemographicsRegressor  # noqa: E402
from elvmass.training import predict_normalised  # noqa: E402

try:  # the model interface (experiments/), or the code before it (evaluate/study.py)
    from elvmass.experiments.study import load_study_manifest, make_preset, study_data  # noqa: E402

    def fit_fold(features, split, preset):
        spec = dataclasses.replace(preset.net_spec(), seed=preset.train.seed - split.fold)  # fit adds the fold
        fitted = spec.fit(features, split)
        return fitted.predict(features, split.test), fitted.info["best_epoch"], fitted.info["epochs_run"]

    def features_for(df, preset, cache):
        return study_data(df, [preset.net_spec()], cache)
except ImportError:
    from elvmass.evaluate.study import cohort_features_for as features_for, fit_net_fold, load_study_manifest, make_preset  # noqa: E402

    def fit_fold(features, split, preset):
        model, scaler, res, data = fit_net_fold(features, split, preset)
        return scaler.to_grams(predict_normalised(model, data.subset(split.test))), res.best_epoch, len(res.history)

base = make_preset("paper").with_progress(False)


def config_preset(c: str):
    """The paper preset changed as the config string says (see the module doc)."""
    if c == "paper":
        return base
    if "=" not in c:  # SCHEDULE:EPOCHS
        sched, ep = c.split(":")
        c = f"schedule={sched},epochs={ep}"
    changes = dict(kv.split("=", 1) for kv in c.split(","))
    preset = base
    if "out_fs_hz" in changes:
        preset = dataclasses.replace(preset, signal=dataclasses.replace(preset.signal, out_fs_hz=float(changes.pop("out_fs_hz"))))
    # each value has the type of the preset's own value for that field; a tuple is written 32/32/32
    def cast(obj, k, v):
        old = getattr(obj, k)
        if isinstance(old, bool):
            return v.lower() in ("1", "true", "yes")
        if isinstance(old, tuple):
            return tuple(type(old[0])(x) for x in v.split("/"))
        return type(old)(v)

    net = {k: cast(base.net, k, changes.pop(k)) for k in list(changes) if hasattr(base.net, k) and not hasattr(base.train, k)}
    train = {k: cast(base.train, k, v) for k, v in changes.items()}
    return dataclasses.replace(preset, net=dataclasses.replace(preset.net, **net),
                               train=dataclasses.replace(preset.train, **train))


df, _ = load_study_manifest(manifest)
features = features_for(df, base, cache)
df = features.manifest
_features = {base.signal: features}


def features_of(preset):
    if preset.signal not in _features:
        _features[preset.signal] = features_for(df, preset, cache)
    return _features[preset.signal]

y = df["lvm_g"].to_numpy(float)
for s in make_splits(df, base.n_folds, base.val_fraction):
    if tag == "old":
        rows = np.concatenate([s.train, s.val])
        reg = DemographicsRegressor(base.demographics).fit(df.iloc[rows], y[rows])
        with open(out, "a") as f:
            f.write(json.dumps({"tag": "demographics", "fold": s.fold, "test_mae_g": mae_g(y[s.test], reg.predict(df.iloc[s.test]))}) + "\n")
    for c in configs:
        preset = config_preset(c)
        preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, seed=preset.seed + s.fold))
        t0, c0 = time.perf_counter(), time.process_time()
        pred, best_epoch, epochs_run = fit_fold(features_of(preset), s, preset)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        with open(out, "a") as f:
            f.write(json.dumps({"tag": f"{tag}/{c}", "fold": s.fold, "test_mae_g": mae_g(y[s.test], pred),
                                "best_epoch": best_epoch, "epochs_run": epochs_run, "wall_s": round(wall, 1),
                                "cpu_s": round(cpu, 1), "load_1min": open("/proc/loadavg").read().split()[0]}) + "\n")
