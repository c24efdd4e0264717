"""The HTTP API (FastAPI on uvicorn): health, models, champion artifact, promotion, ingestion.

``create_app`` builds the application from the daemon's parts; ``ApiServer`` serves it from a
thread next to the scheduler. Who calls them: ``reoptd run`` (through ``Service``) and the tests.
"""

from reoptd.api._app import create_app
from reoptd.api._server import ApiServer

__all__ = ["ApiServer", "create_app"]
