"""Locust scenarios: plain locustfiles that `locust -f scenarios/<name>.py` also runs."""
