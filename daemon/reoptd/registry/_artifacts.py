"""Content-addressed artifact store: files named by their sha256, verified on every load.

A write goes to a temporary file in the same directory, is fsynced, then renamed into place, so a
crash never leaves a partial artifact under a real name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from reoptd.errors import ArtifactError


class ArtifactStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256. Storing the same bytes twice is a no-op."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
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

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``; raises ``ArtifactError`` if missing or altered."""
        target = self.path(sha256)
        try:
            data = target.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"artifact {sha256[:12]} unreadable at {target}: {exc}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ArtifactError(
                f"artifact {target} is corrupt: sha256 {actual[:12]}… != expected {sha256[:12]}…"
            )
        return data
