"""Runs: the commands' work (load, accept) and the bundled service they may start."""
