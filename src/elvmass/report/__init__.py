"""elvmass.report"""
