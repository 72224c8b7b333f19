"""elvmass.synth"""
