"""The experiments layer: above models, training and evaluation; below report and the CLI.

* :mod:`~elvmass.experiments.protocol`: the paper's cross-validation for any list of models
  (folds, sex-restricted models, out-of-fold predictions; (model, fold) tasks a runner executes);
* :mod:`~elvmass.experiments.study`: presets, the study's models, summary, comparisons, the results
  folder (``elvmass study`` / ``elvmass demo``);
* :mod:`~elvmass.experiments.final`: the final models on the whole cohort, saved as a bundle
  (``elvmass train``).
"""
