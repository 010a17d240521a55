"""The ``flowtrail`` command line."""

from flowtrail.cli.app import app, main

__all__ = ["app", "main"]
