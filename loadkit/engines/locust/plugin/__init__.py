"""The plugin's parts that run inside Locust's process: the state of a test and its roles.

``loadkit_plugin.py`` (the file Locust loads with ``-f``) wires Locust's events and options to
these. They may import gevent and Locust; nothing outside ``loadkit_plugin.py`` and this package
imports them (checked by tests/loadkit/test_cli_imports.py).
"""
