"""elvmass.signal"""
