"""Artifacts: model and reference bytes, content-addressed by their sha256 and verified on load.

``ArtifactStore`` is the small contract a backend implements: a local directory (the default) or
an object store (``fsspec_artifacts.FsspecArtifactStore``, for ``s3://`` and other fsspec URLs).
Who calls it: the ``Store`` writes both artifacts of a version
before the version becomes visible, and reads them back (verified) on every load and before every
promotion.

``LocalArtifactStore`` writes to a temporary file in the same directory, fsyncs it, then renames
it into place, so a crash never leaves a partial artifact under a real name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from reoptd.errors import ArtifactError


class ArtifactStore(ABC):
    """Bytes stored under their sha256. ``put`` is durable when it returns; ``get`` verifies."""

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data`` durably; return its sha256. Storing the same bytes twice is a no-op."""

    @abstractmethod
    def read(self, sha256: str) -> bytes:
        """The stored bytes, unverified; raises ``ArtifactError`` if they cannot be read."""

    @abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether bytes are stored under ``sha256`` (not whether they are intact)."""

    @abstractmethod
    def uri(self, sha256: str) -> str:
        """Where the bytes live, for people and for the version record's ``artifact_path``."""

    def entries(self) -> Iterator[tuple[str, str, datetime]]:
        """Every stored file as (key, sha256 or temporary name, last written, real time), for
        ``Store.collect_artifacts``; a backend that cannot list yields nothing."""
        return iter(())

    def remove(self, key: str) -> None:  # noqa: B027 - optional, with ``entries``
        """Delete the file ``key`` of ``entries`` (gone already: nothing to do)."""

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``; raises ``ArtifactError`` if missing or altered."""
        data = self.read(sha256)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ArtifactError(
                f"artifact {self.uri(sha256)} is corrupt: sha256 {actual[:12]}… != expected"
                f" {sha256[:12]}…"
            )
        return data


class LocalArtifactStore(ArtifactStore):
    """A directory: ``root/ab/abcdef…`` per artifact."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def uri(self, sha256: str) -> str:
        return str(self.path(sha256))

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            os.utime(target)  # fresh again: ``collect_artifacts`` spares it while it is reused
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return digest

    def entries(self) -> Iterator[tuple[str, str, datetime]]:
        if not self.root.is_dir():
            return
        for path in self.root.glob("*/*"):
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:  # removed meanwhile
                continue
            if path.is_file():
                key = str(path.relative_to(self.root))
                yield key, path.name, datetime.fromtimestamp(mtime, UTC)

    def remove(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def read(self, sha256: str) -> bytes:
        target = self.path(sha256)
        try:
            return target.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"artifact {sha256[:12]} unreadable at {target}: {exc}") from None


def open_artifacts(artifacts: str | Path | ArtifactStore) -> ArtifactStore:
    """An artifact store from a directory, an fsspec URL (``s3://bucket/prefix``: see
    ``fsspec_artifacts``), or the given store as it is."""
    if isinstance(artifacts, ArtifactStore):
        return artifacts
    if isinstance(artifacts, str) and "://" in artifacts:
        from reoptd.store.fsspec_artifacts import FsspecArtifactStore

        return FsspecArtifactStore(artifacts)
    return LocalArtifactStore(artifacts)
