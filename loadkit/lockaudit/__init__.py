"""The lock audit: rules over source text (pure), and the run over files on disk."""
