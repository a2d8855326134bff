"""Compatibility: each locustfile here runs through plain Locust and through ``loadkit load``."""
