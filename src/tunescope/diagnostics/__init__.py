"""Instruments that look inside a model: attention entropy, gradient norms, CKA, jump, sparsity, calibration, NTK.

Diagnostics never import strategies; a strategy may consume a diagnostics result passed in as plain data.
"""
