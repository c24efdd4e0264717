"""Webhooks against a real HTTP receiver on loopback: signed, retried, fired by every path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _receiver import SECRET, Receiver
from _served import MODEL, Served, api_policy, serve

from reoptd import app as assemble
from reoptd.metrics import Metrics
from reoptd.settings import Settings
from reoptd.store import Store
from reoptd.store.sql import SqlStore
from reoptd.webhooks import WebhookNotifier, sign, verify

AT = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=1)
    yield r
    r.close()


def _registry(tmp_path: Path) -> Store:
    """A registry with two versions of the demo model (artifacts need not be real models)."""
    registry = SqlStore(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "artifacts")
    registry.ensure_model(api_policy(), AT)
    for i in (1, 2):
        registry.add_version(MODEL, model_bytes=b"m%d" % i, reference_bytes=b"r", at=AT)
    return registry


def test_a_promotion_is_posted_signed_and_retried_after_a_failure(
    tmp_path: Path, receiver: Receiver
) -> None:
    registry = _registry(tmp_path)
    notifier = WebhookNotifier([receiver.url], SECRET, backoff=0.05, wall=lambda: 1767312000.0)
    registry.listeners.append(notifier)
    registry.promote(MODEL, 1, at=AT, reason="first")
    (failed, _body, status), (headers, body, ok) = receiver.wait(2)
    assert (status, ok) == (500, 200)  # the first attempt failed, the retry went through
    assert verify(SECRET, body, headers["X-Reoptd-Signature"])
    assert headers["X-Reoptd-Signature"] == sign(SECRET, body)
    assert not verify("other-secret", body, headers["X-Reoptd-Signature"])
    payload = json.loads(body)
    assert payload == {
        "event": "promotion",
        "model": MODEL,
        "from_version": None,
        "to_version": 1,
        "reason": "first",
        "at": AT.isoformat(),
        "sent_at": 1767312000,
        "delivery": headers["X-Reoptd-Delivery"],
    }
    assert (
        headers["X-Reoptd-Timestamp"] == "1767312000" and headers["X-Reoptd-Event"] == "promotion"
    )
    assert failed["X-Reoptd-Delivery"] == headers["X-Reoptd-Delivery"]  # one delivery, retried

    registry.promote(MODEL, 2, at=AT, reason="second")
    registry.rollback(MODEL, at=AT, reason="guard: worse live")
    requests = receiver.wait(4)
    events = [json.loads(b) for _h, b, _s in requests[2:]]
    assert sorted((e["event"], e["from_version"], e["to_version"]) for e in events) == [
        ("promotion", 1, 2),
        ("rollback", 2, 1),
    ]
    notifier.close()
    registry.close()


def test_a_delivery_that_never_succeeds_is_counted_and_never_blocks(tmp_path: Path) -> None:
    dead = Receiver(fail=100)
    metrics = Metrics()
    settings = Settings(
        home=tmp_path / "home",
        webhook_urls=f"{dead.url}, {dead.url}?second",
        webhook_secret=SECRET,
        webhook_attempts=3,
        webhook_backoff=0.01,
    )
    registry = assemble.open_registry(settings, metrics)
    registry.ensure_model(api_policy(), AT)
    registry.add_version(MODEL, model_bytes=b"m", reference_bytes=b"r", at=AT)
    registry.promote(MODEL, 1, at=AT, reason="x")  # returns at once: delivery is in the background
    assert registry.model(MODEL).champion_version == 1
    dead.wait(6)
    (notifier,) = registry.listeners
    notifier.close()
    failures = metrics.registry.get_sample_value("reoptd_webhook_failures_total", {"model": MODEL})
    assert failures == 2  # both URLs, each after 3 attempts
    dead.close()
    registry.close()


def test_webhooks_without_a_secret_are_refused(tmp_path: Path) -> None:
    from reoptd.errors import ReoptdError

    settings = Settings(home=tmp_path, webhook_urls="http://127.0.0.1:9/x")
    with pytest.raises(ReoptdError, match="REOPTD_WEBHOOK_SECRET"):
        assemble.open_registry(settings)
    settings = Settings(home=tmp_path, webhook_urls="ftp://x", webhook_secret="s")
    with pytest.raises(ReoptdError, match="must start with http"):
        assemble.open_registry(settings)


def test_api_and_cli_promotions_fire_the_webhook(
    api_template: Path, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail = 0
    with serve(api_template, tmp_path / "home") as s:
        s.registry.listeners.append(WebhookNotifier([receiver.url], SECRET, backoff=0.05))
        with s.client() as http:
            assert http.post(f"/models/{MODEL}/approve").status_code == 200
        ((headers, body, _status),) = receiver.wait(1)
        assert json.loads(body)["to_version"] == 2 and verify(
            SECRET, body, headers["X-Reoptd-Signature"]
        )
        _cli_rollback(s, receiver)


def _cli_rollback(s: Served, receiver: Receiver) -> None:
    """`reoptd models rollback` in its own process: it delivers before it exits."""
    env = {
        **os.environ,
        "REOPTD_HOME": str(s.home),
        "REOPTD_WEBHOOK_URLS": receiver.url,
        "REOPTD_WEBHOOK_SECRET": SECRET,
    }
    out = subprocess.run(
        [sys.executable, "-m", "reoptd.cli", "models", "rollback", MODEL],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    requests = receiver.wait(2)
    rollback = json.loads(requests[1][1])
    assert (rollback["event"], rollback["from_version"], rollback["to_version"]) == (
        "rollback",
        2,
        1,
    )
