"""A real S3-compatible server on loopback for the tests: moto's server mode.

``s3_server`` starts one ``ThreadedMotoServer`` per session on a free 127.0.0.1 port and points
the AWS environment at it (fake credentials, ``AWS_ENDPOINT_URL_S3``), which is where boto/s3fs
read their endpoint and keys, as in production. ``s3_bucket`` creates a bucket of its own
(uuid name) per test and deletes it with its objects afterwards.

Use from a test module: ``from _s3 import s3_bucket, s3_server  # noqa: F401`` (fixtures).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server on loopback; the AWS_* environment points at it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*ENV, "AWS_ENDPOINT_URL_S3"]}
    os.environ.update(ENV, AWS_ENDPOINT_URL_S3=endpoint)
    try:
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> Iterator[str]:
    """A new, empty bucket of its own on the server (its name), removed after the test."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server)
    name = f"reoptd-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    yield name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=obj["Key"])
    client.delete_bucket(Bucket=name)
