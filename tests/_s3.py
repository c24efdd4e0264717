"""A real S3-compatible server for tests: moto's server mode on a free loopback port.

``s3_server`` (session-scoped) starts one ``ThreadedMotoServer`` and yields its endpoint URL;
``s3_env`` points botocore at it through the environment (``AWS_ENDPOINT_URL`` and dummy
credentials, as an operator would) and yields a fresh bucket name that the test owns. Import both
in a test module: ``from _s3 import s3_env, s3_server  # noqa: F401``; ``s3_bucket`` is ``s3_env``
that also empties and removes its bucket afterwards.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server on loopback, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> Iterator[str]:
    """Credentials and endpoint in the environment only; a new empty bucket; its name."""
    nowhere = tmp_path_factory.mktemp("aws") / "none"
    for name, value in {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask the instance metadata service
        "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
        "AWS_CONFIG_FILE": str(nowhere),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # a cached client keeps old credentials
    bucket = f"reoptd-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(bucket)
    yield bucket
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_bucket(s3_env: str, s3_server: str) -> Iterator[str]:
    """``s3_env``'s bucket, emptied and removed after the test."""
    import boto3

    yield s3_env
    client = boto3.client("s3", endpoint_url=s3_server)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3_env):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=s3_env, Key=obj["Key"])
    client.delete_bucket(Bucket=s3_env)
