"""Artifacts on object storage (``s3://bucket/prefix`` or any fsspec URL), so that a run on
another machine writes what the daemon and the serving client read.

Same layout and promises as ``LocalArtifactStore``: ``<root>/ab/abcdef…`` per artifact, named by
its sha256 and verified on every load (``ArtifactStore.get``). A write goes to a temporary key
beside its target (``<root>/ab/.tmp-<uuid>``) and is then moved onto the real key (on S3: a
server-side copy, then the temporary object is deleted), so an object under a real name is
always complete; a temporary object left by a killed write is removed by
``Store.collect_artifacts`` once old. Which filesystem: fsspec's registry (``s3fs`` for
``s3://``: the optional extra ``reoptd[s3]``). Credentials and endpoint come from the
environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL_S3``…), never
from a setting.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from reoptd.errors import ArtifactError, ReoptdError
from reoptd.store.artifacts import ArtifactStore


class FsspecArtifactStore(ArtifactStore):
    """Artifacts under the fsspec URL ``url`` (``s3://bucket/prefix``, ``gs://…``, ``file://…``)."""

    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError:  # pragma: no cover - the extra is part of the dev install
            raise ReoptdError(
                f"REOPTD_ARTIFACTS={url}: object storage needs fsspec: pip install 'reoptd[s3]'"
            ) from None
        try:
            fs, root = fsspec.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise ReoptdError(
                f"REOPTD_ARTIFACTS={url}: no filesystem for this URL ({exc}); for s3:// install"
                " 'reoptd[s3]'"
            ) from None
        self.url = url.rstrip("/")
        self.fs: Any = fs
        self.root = root.rstrip("/")

    def _key(self, sha256: str) -> str:
        return f"{self.root}/{sha256[:2]}/{sha256}"

    def uri(self, sha256: str) -> str:
        return f"{self.url}/{sha256[:2]}/{sha256}"

    def exists(self, sha256: str) -> bool:
        try:
            self.fs.invalidate_cache()  # another process may have written it meanwhile
            return bool(self.fs.isfile(self._key(sha256)))
        except OSError as exc:
            raise ArtifactError(f"artifact store {self.url} unreachable: {exc}") from None

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self._key(digest)
        # Written again even when it exists: a fresh "last modified" keeps
        # ``collect_artifacts`` from deleting an old orphan that a run in flight is reusing (an
        # object store has no cheap ``utime``).
        tmp = f"{self.root}/{digest[:2]}/.tmp-{uuid.uuid4().hex}"
        try:
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, target)
        except OSError as exc:
            self._discard(tmp)
            raise ArtifactError(f"artifact {self.uri(digest)} not written: {exc}") from None
        except BaseException:
            self._discard(tmp)
            raise
        return digest

    def _discard(self, key: str) -> None:
        # not written at all, or else collected later by ``collect_artifacts``
        with contextlib.suppress(OSError):
            self.fs.rm_file(key)

    def read(self, sha256: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._key(sha256)))
        except OSError as exc:
            raise ArtifactError(
                f"artifact {sha256[:12]} unreadable at {self.uri(sha256)}: {exc}"
            ) from None

    def entries(self) -> Iterator[tuple[str, str, datetime]]:
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        for path, info in found.items():
            if info.get("type") != "file":
                continue
            written = _modified(info)
            if written is None:  # a backend that says nothing of when: never collected
                continue
            key = path[len(self.root) + 1 :] if path.startswith(self.root + "/") else path
            yield key, path.rsplit("/", 1)[-1], written

    def remove(self, key: str) -> None:
        self._discard(f"{self.root}/{key}")


def _modified(info: dict[str, Any]) -> datetime | None:
    """When an object was last written, from a listing: ``LastModified`` (S3), ``mtime``
    (local, SFTP), ``updated`` (GCS)."""
    for field in ("LastModified", "mtime", "updated", "last_modified"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
