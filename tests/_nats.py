"""A JetStream stream of its own for each test, on the NATS server the test machine runs
(127.0.0.1:4222, or ``REOPTD_TEST_NATS_URL``). ``jetstream`` yields a ``Broker`` that publishes
JSON rows to the stream's subjects and deletes the stream afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

URL = os.environ.get("REOPTD_TEST_NATS_URL", "nats://127.0.0.1:4222")


class Broker:
    def __init__(self, name: str) -> None:
        self.url = URL
        self.stream = name
        self.predictions = f"{name}.predictions"
        self.labels = f"{name}.labels"

    async def _call(self, action: Any) -> Any:
        import nats

        nc = await nats.connect(URL, connect_timeout=2, allow_reconnect=False)
        try:
            return await action(nc.jetstream())
        finally:
            await nc.close()

    def run(self, action: Any) -> Any:
        return asyncio.run(self._call(action))

    def publish(self, subject: str, rows: list[Any]) -> None:
        async def send(js: Any) -> None:
            for row in rows:
                data = row if isinstance(row, bytes) else json.dumps(row, default=str).encode()
                await js.publish(subject, data, stream=self.stream)

        self.run(send)

    def consumer(self, durable: str) -> Any:
        return self.run(lambda js: js.consumer_info(self.stream, durable))


@pytest.fixture
def jetstream() -> Iterator[Broker]:
    broker = Broker(f"reoptd_{uuid.uuid4().hex[:12]}")
    broker.run(
        lambda js: js.add_stream(name=broker.stream, subjects=[broker.predictions, broker.labels])
    )
    yield broker
    broker.run(lambda js: js.delete_stream(broker.stream))
