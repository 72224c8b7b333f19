"""elvmass.segment: a learned ECG segmentation (P wave / QRS complex / T wave / none for every sample of
every lead), trained on LUDB's cardiologist annotations, with HMM (Viterbi) decoding; the ECG profile
ECG-AI's trees are trained on is built from it (:mod:`elvmass.segment.profile`).

    network (:mod:`~elvmass.segment.network`) -> posteriors -> Viterbi (:mod:`~elvmass.segment.hmm`)
    -> per-lead and global waves (:mod:`~elvmass.segment.model`); training on LUDB
    (:mod:`~elvmass.segment.ludb`, :mod:`~elvmass.segment.train`), scoring (:mod:`~elvmass.segment.score`);
    the signal pipeline with the model's boundaries (:mod:`~elvmass.segment.delineate`, ``delineation="segment"``,
    or ``"hybrid"``: the rules with the network's P onset averaged in).
"""

from elvmass.segment.delineate import analyze_ecg_hybrid, analyze_ecg_segment, delineate_record
from elvmass.segment.model import Segmentation, Segmenter, Wave, load_segmenter

__all__ = ["Segmentation", "Segmenter", "Wave", "analyze_ecg_hybrid", "analyze_ecg_segment", "delineate_record",
           "load_segmenter"]
