"""Rendering: tables, Markdown and machine formats for what the pure modules computed.

One module per thing rendered (smoke, load, gate, errors, locks); nothing here measures.
"""
