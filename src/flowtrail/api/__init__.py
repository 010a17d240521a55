"""The HTTP API: ``create_app(ServeConfig(...))`` builds the FastAPI app that ``flowtrail
serve`` runs on uvicorn."""

from flowtrail.api.app import create_app
from flowtrail.api.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]
