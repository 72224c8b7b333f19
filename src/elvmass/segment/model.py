"""The trained segmentation model: network weights, class priors and HMM transitions, and what it finds
in an ECG record.

The weights shipped in the package (``elvmass/data/segment/segment.safetensors`` + ``segment.json``) were
trained on the 96 training records of LUDB (see :mod:`elvmass.segment.ludb` and
``src/elvmass/data/ATTRIBUTION.md`` for the exact command); :func:`load_segmenter` reads them with no
network and no LUDB.

For one record (:meth:`Segmenter.segment`):

- *per lead*: the network's posteriors of every lead, decoded by Viterbi (:mod:`elvmass.segment.hmm`);
- *global* (all leads together, as ECG machines measure): Viterbi on the mean of the 12 leads'
  posteriors, a consensus of the leads. (Two wider rules - the 2nd earliest onset to the 2nd latest
  offset of the leads' own waves, or their first to third quartile - were tried on the vendor files of
  ``../shared/data/vendor``: the first made the QRS 4-16 ms longer than the devices', the second agreed
  about as well as the consensus, which has no parameter and is kept.)

    >>> from elvmass.io import example_ecg_path, read_ecg
    >>> seg = load_segmenter().segment(read_ecg(example_ecg_path()))
    >>> 80 <= seg.qrs_ms <= 110, {w.wave for w in seg.waves} == {"P", "QRS", "T"}
    (True, True)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from elvmass.errors import ElvmassError
from elvmass.segment.hmm import viterbi_labels, waves_from_labels
from elvmass.segment.network import MODEL_FS_HZ, SegmentNet, export_onnx, prepare_leads
from elvmass.signal.p_onset_net import ONNX_FILE

WAVE_NAMES = {1: "P", 2: "QRS", 3: "T"}
WEIGHTS_FILE = "segment.safetensors"
META_FILE = "segment.json"


@dataclass(frozen=True)
class Wave:
    """One P wave, QRS complex or T wave: ``onset_s`` (its first sample) and ``offset_s`` (its last sample,
    as LUDB marks offsets) in s from the start of the record."""

    wave: str
    onset_s: float
    offset_s: float

    @property
    def duration_ms(self) -> float:
        return (self.offset_s - self.onset_s) * 1000.0

    def to_dict(self) -> dict:
        return {"wave": self.wave, "onset_s": round(self.onset_s, 4), "offset_s": round(self.offset_s, 4)}


@dataclass
class Segmentation:
    """Waves found in one record: ``waves`` global, ``lead_waves`` per lead (12 lists, standard order);
    ``lead_labels`` (12, m) and ``global_labels`` (m,) the decoded labels at ``model_fs_hz``."""

    waves: list[Wave]
    lead_waves: list[list[Wave]]
    lead_labels: np.ndarray
    global_labels: np.ndarray
    fs_hz: float
    model_fs_hz: float = MODEL_FS_HZ
    source_path: str | None = None

    def of(self, name: str) -> list[Wave]:
        return [w for w in self.waves if w.wave == name]

    @property
    def qrs_ms(self) -> float:
        """Median duration of the global QRS complexes (NaN when none was found)."""
        d = [w.duration_ms for w in self.of("QRS")]
        return float(np.median(d)) if d else math.nan

    def to_json_dict(self) -> dict:
        q = self.qrs_ms
        return {
            "path": self.source_path,
            "fs_hz": self.fs_hz,
            "waves": [w.to_dict() for w in self.waves],
            "qrs_ms": round(q, 1) if math.isfinite(q) else math.nan,
        }


@dataclass
class Segmenter:
    """A trained network with its priors and transition matrix (see :mod:`elvmass.segment.hmm`)."""

    net: SegmentNet
    priors: np.ndarray
    transitions: np.ndarray
    meta: dict = field(default_factory=dict)

    def posteriors(self, x: np.ndarray) -> np.ndarray:
        """(leads, m) prepared input -> (leads, m, 4) class probabilities."""
        import torch

        if self.net.training:  # (switching costs ~0.4 ms a call, so only when needed)
            self.net.eval()
        with torch.no_grad():
            logits = self.net(torch.from_numpy(np.ascontiguousarray(x[:, None, :], dtype=np.float32)))
            return torch.softmax(logits, dim=1).permute(0, 2, 1).numpy().astype(np.float64)

    def decode(self, prob: np.ndarray) -> np.ndarray:
        """(..., m, 4) probabilities -> (..., m) labels by Viterbi with the log posteriors as emissions."""
        log_e = np.log(np.clip(prob, 1e-8, 1.0))
        with np.errstate(divide="ignore"):
            log_t = np.log(self.transitions)
        return viterbi_labels(log_e, log_t)

    def segment_signal(self, signal_mv: np.ndarray, fs_hz: float, source_path: str | None = None) -> Segmentation:
        x = prepare_leads(signal_mv, fs_hz)
        prob = self.posteriors(x)
        lead_labels = self.decode(prob)
        global_labels = self.decode(prob.mean(axis=0))
        f = MODEL_FS_HZ
        lead_waves = [[Wave(WAVE_NAMES[c], a / f, b / f) for c, a, b in waves_from_labels(lab)] for lab in lead_labels]
        waves = [Wave(WAVE_NAMES[c], a / f, b / f) for c, a, b in waves_from_labels(global_labels)]
        return Segmentation(waves, lead_waves, lead_labels, global_labels, float(fs_hz), MODEL_FS_HZ, source_path)

    def segment(self, record) -> Segmentation:
        """Segment an :class:`~elvmass.record.ECGRecord` (all 12 leads)."""
        return self.segment_signal(record.signal_mv, record.fs_hz, record.source_path)

    def save(self, out_dir) -> Path:
        from safetensors.numpy import save_file

        from elvmass.atomic import atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.net.state_dict().items() if v.dtype.is_floating_point}
        tmp = out / (WEIGHTS_FILE + ".tmp")
        save_file(arrays, str(tmp))
        tmp.replace(out / WEIGHTS_FILE)
        meta = dict(self.meta)
        meta.update(channels=list(self.net.channels), priors=self.priors.tolist(), transitions=self.transitions.tolist(),
                    model_fs_hz=MODEL_FS_HZ)
        atomic_write_text(out / META_FILE, json.dumps(meta, indent=1) + "\n")
        export_onnx(self.net, out / ONNX_FILE)  # what the signal pipeline runs (elvmass.signal.p_onset_net)
        return out


def load_segmenter(model_dir=None, packaged: str = "segment") -> Segmenter:
    """The segmenter in ``model_dir`` (a folder written by ``elvmass segment train``), or, when ``model_dir``
    is None, the one shipped in the package folder ``elvmass/data/<packaged>`` (``segment``: trained on the
    LUDB records not divisible by 5; ``segment_odd``: on the odd ones, for the hybrid delineation)."""
    import torch
    from safetensors.numpy import load_file

    if model_dir is None:
        base = resources.files("elvmass") / "data" / packaged
        weights, meta_text = base / WEIGHTS_FILE, (base / META_FILE).read_text()
        with resources.as_file(weights) as wpath:
            arrays = load_file(str(wpath))
    else:
        d = Path(model_dir)
        if not (d / WEIGHTS_FILE).is_file() or not (d / META_FILE).is_file():
            raise ElvmassError(f"{d}: not a segmentation model folder (needs {WEIGHTS_FILE} and {META_FILE})")
        arrays = load_file(str(d / WEIGHTS_FILE))
        meta_text = (d / META_FILE).read_text()
    meta = json.loads(meta_text)
    net = SegmentNet(tuple(meta["channels"]))
    state = net.state_dict()
    for k, v in arrays.items():
        state[k] = torch.from_numpy(v)
    net.load_state_dict(state)
    net.eval()
    return Segmenter(net, np.asarray(meta["priors"], float), np.asarray(meta["transitions"], float), meta)
