"""Serving the API from a thread: a ``uvicorn.Server`` on a socket bound here, so a busy port is
a clear error at start (not a ``sys.exit`` inside a thread) and port 0 picks a free one."""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from reoptd.errors import ReoptdError

log = logging.getLogger("reoptd.api")


class ApiServer:
    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8464) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ReoptdError(
                f"cannot serve the API on {self.host}:{self.port}: {exc.strerror} (another"
                " reoptd running? choose a port with --api-port or REOPTD_API_PORT, or --no-api)"
            ) from None
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="reoptd-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ReoptdError(f"the API server did not start on {self.url}")
            time.sleep(0.01)
        log.info("API on %s (OpenAPI schema at %s/openapi.json)", self.url, self.url)

    def stop(self) -> None:
        """Finish the requests in flight, then stop (uvicorn's graceful shutdown)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None
