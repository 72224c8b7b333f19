"""elvmass.io"""
