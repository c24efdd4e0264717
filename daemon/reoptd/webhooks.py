"""Webhooks: a signed JSON POST on every promotion and rollback, from a background worker.

``WebhookNotifier`` is a store listener (``Store.listeners``), so every champion change
fires it whoever made it: the loop (auto, shadow, guard rollback), the API or the CLI. Delivery
runs on a small thread pool, so a slow or dead receiver never blocks the loop; each attempt that
fails (connection error or a non-2xx answer) is retried with exponential backoff, up to
``attempts`` times; a delivery that never succeeds is logged and counted.

What a receiver gets::

    POST <url>
    Content-Type: application/json
    X-Reoptd-Event: promotion | rollback
    X-Reoptd-Timestamp: 1767312000          (unix seconds of this attempt; also `sent_at`)
    X-Reoptd-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by REOPTD_WEBHOOK_SECRET>

    {"event": "promotion", "model": "churn", "from_version": 3, "to_version": 4,
     "reason": "...", "at": "2026-01-02T03:00:00+00:00", "sent_at": 1767312000,
     "delivery": "<uuid, the same for every retry>"}

To verify: recompute the HMAC over the raw body, compare with ``hmac.compare_digest``, then
refuse a ``sent_at`` older than a few minutes (it is inside the signed body, so a replayed
request cannot refresh it) or a ``delivery`` id seen before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx

from reoptd.store import EventRecord

log = logging.getLogger("reoptd.webhooks")

EVENTS = {"promote": "promotion", "rollback": "rollback"}


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Reoptd-Signature`` value of ``body``: ``sha256=<hex digest>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, signature: str) -> bool:
    """True if ``signature`` is the signature of ``body`` (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, body), signature)


class WebhookNotifier:
    """POSTs each champion change to ``urls``. Call it as ``notifier(model, event)``."""

    def __init__(
        self,
        urls: Sequence[str],
        secret: str,
        *,
        attempts: int = 5,
        backoff: float = 1.0,
        timeout: float = 5.0,
        on_failure: Callable[[str], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("webhooks need a signing secret (REOPTD_WEBHOOK_SECRET)")
        if attempts < 1:
            raise ValueError(f"webhook attempts must be at least 1, got: {attempts}")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL must start with http:// or https://, got: {url!r}")
        self.urls = list(urls)
        self._secret = secret.encode()
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.on_failure = on_failure
        self._wall = wall  # delivery time is wall-clock by nature: receivers compare with theirs
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reoptd-webhook")

    def __call__(self, model: str, event: EventRecord) -> list[Future[bool]]:
        payload = {
            "event": EVENTS.get(event.kind, event.kind),
            "model": model,
            "from_version": event.from_version,
            "to_version": event.to_version,
            "reason": event.reason,
            "at": event.at.isoformat(),
        }
        return [self._pool.submit(self.deliver, url, payload) for url in self.urls]

    def deliver(self, url: str, payload: dict[str, Any]) -> bool:
        """POST ``payload`` to ``url`` until a 2xx answer or ``attempts`` tries; True if sent."""
        delivery = str(uuid.uuid4())
        problem = ""
        with httpx.Client(timeout=self.timeout) as client:
            for attempt in range(1, self.attempts + 1):
                sent_at = int(self._wall())
                body = json.dumps(
                    {**payload, "sent_at": sent_at, "delivery": delivery}, sort_keys=True
                ).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-Reoptd-Event": payload["event"],
                    "X-Reoptd-Timestamp": str(sent_at),
                    "X-Reoptd-Signature": sign(self._secret, body),
                    "X-Reoptd-Delivery": delivery,
                }
                try:
                    response = client.post(url, content=body, headers=headers)
                    if response.is_success:
                        log.info(
                            "%s: webhook %s sent to %s (attempt %d)",
                            payload["model"],
                            payload["event"],
                            url,
                            attempt,
                        )
                        return True
                    problem = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if attempt < self.attempts:
                    delay = self.backoff * 2 ** (attempt - 1)
                    log.warning(
                        "%s: webhook to %s failed (%s); retry %d/%d in %.1fs",
                        payload["model"],
                        url,
                        problem,
                        attempt,
                        self.attempts - 1,
                        delay,
                    )
                    time.sleep(delay)
        log.error(
            "%s: webhook %s to %s given up after %d attempts: %s",
            payload["model"],
            payload["event"],
            url,
            self.attempts,
            problem,
        )
        if self.on_failure is not None:
            self.on_failure(payload["model"])
        return False

    def close(self, wait: bool = True) -> None:
        """Stop taking events; with ``wait`` finish the deliveries under way (and their retries)."""
        self._pool.shutdown(wait=wait)
