"""Engines: what sends the requests and feeds the measurement (smoke on httpx, load on Locust)."""
