"""elvmass.models"""
