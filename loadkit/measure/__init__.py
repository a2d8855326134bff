"""Measurement: HDR histograms, the recorder, error kinds and classification, the results file.

Pure data and computation; depends on nothing in loadkit but ``exceptions`` and ``config``.
"""
