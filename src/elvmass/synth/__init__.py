"""elvmass.synth: the built-in synthetic cohort of paired 12-lead ECGs and CT-derived LV mass.

    >>> from elvmass.synth import SynthConfig, generate_cohort   # doctest: +SKIP
    >>> out = generate_cohort(SynthConfig(n=300, seed=0), "synth_out")  # doctest: +SKIP

See docs/synth.md for the model and its sources.
"""

from elvmass.synth.cohort import IMAGING_COLUMNS, PROFILES, SynthConfig, SynthOutput, SynthProfile, generate_cohort, simulate_patient

__all__ = ["IMAGING_COLUMNS", "PROFILES", "SynthConfig", "SynthOutput", "SynthProfile", "generate_cohort", "simulate_patient"]
