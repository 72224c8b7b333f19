"""elvmass.evaluate"""
