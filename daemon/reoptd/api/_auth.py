"""Bearer-token guard of the mutating routes.

Without a configured token (``REOPTD_API_TOKEN``) mutation is disabled (403), never open. The
comparison is constant-time (``hmac.compare_digest``) so response timing leaks nothing of it.

The token is checked before anything of the request is read: ``GuardedRoute`` runs the check
ahead of FastAPI's own handler, which parses the body before it solves dependencies (a
malformed body without a token would otherwise get a 422 with parser details, not a 401). The
dependency stays on the routes for the OpenAPI schema's security scheme.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="REOPTD_API_TOKEN")


class TokenGuard:
    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> None:
        self.check(None if credentials is None else credentials.credentials)

    def check(self, given: str | None) -> None:
        """Raise 403 (mutation disabled) or 401 (no or wrong token) unless ``given`` is it."""
        if self._token is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "mutation is disabled: set REOPTD_API_TOKEN on the daemon to enable promote,"
                " rollback, approve and ingest",
            )
        if given is None or not hmac.compare_digest(given.encode(), self._token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid `Authorization: Bearer <REOPTD_API_TOKEN>` header is required",
                headers={"WWW-Authenticate": 'Bearer realm="reoptd"'},
            )

    def check_request(self, request: Request) -> None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        given = credentials.strip() if scheme.lower() == "bearer" and credentials else None
        self.check(given)

    def route_class(self) -> type[APIRoute]:
        """An ``APIRoute`` whose handler checks the token before the body is read."""
        guard = self

        class GuardedRoute(APIRoute):
            def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
                handler = super().get_route_handler()

                async def guarded(request: Request) -> Response:
                    guard.check_request(request)
                    return await handler(request)

                return guarded

        return GuardedRoute
