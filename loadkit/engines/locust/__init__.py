"""The Locust engine: Locust in a child process with loadkit's plugin (``loadkit_plugin.py``).

Locust monkey-patches its process with gevent on import, so the rule is:

- ``loadkit_plugin.py`` (the file Locust loads with ``-f``) and the ``plugin`` package (the state
  of a test and its roles) run only inside Locust's own process. They may import Locust and
  gevent, and nothing else in loadkit imports them.
- The rest of this package (``process.py``, ``failures.py``) and of loadkit never imports Locust
  or gevent: it is safe to import next to asyncio.

tests/loadkit/test_cli_imports.py checks both halves.
"""
