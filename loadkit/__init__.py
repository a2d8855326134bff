"""loadkit: a load-testing and acceptance harness for HTTP APIs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("loadkit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
