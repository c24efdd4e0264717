"""Bearer-token guard of the mutating routes.

Without a configured token (``REOPTD_API_TOKEN``) mutation is disabled (403), never open. The
comparison is constant-time (``hmac.compare_digest``) so response timing leaks nothing of it.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="REOPTD_API_TOKEN")


class TokenGuard:
    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> None:
        if self._token is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "mutation is disabled: set REOPTD_API_TOKEN on the daemon to enable promote,"
                " rollback, approve and ingest",
            )
        given = credentials.credentials.encode() if credentials is not None else b""
        if credentials is None or not hmac.compare_digest(given, self._token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid `Authorization: Bearer <REOPTD_API_TOKEN>` header is required",
                headers={"WWW-Authenticate": 'Bearer realm="reoptd"'},
            )
