"""Tracing spans: the span-file reader, requests assembled from spans, where their time went."""
