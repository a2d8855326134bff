"""The Locust engine: Locust in a child process with loadkit's plugin (``loadkit_plugin.py``).

Only ``loadkit_plugin`` imports Locust, and it runs only inside Locust's own process; the rest
of this package is Locust-free and safe to import next to asyncio.
"""
