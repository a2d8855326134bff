"""Locustfiles written for the compatibility suite, one Locust feature (or a natural pair) each.

Plain locustfiles: run by path by Locust, never imported by the test process (importing Locust
would monkey-patch it). Each does a bounded, deterministic amount of work against
``tests/compat/answering_server.py`` and then idles, so that two separate runs send the same
requests and get the same answers.
"""
