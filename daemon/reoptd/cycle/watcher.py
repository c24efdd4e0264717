"""One set of policies in force, hot-reloaded from their files: shared by the loops and the API.

Each model's policy file is re-read when its modification time or size changes. A valid edit
replaces the policy for every reader at once (the model's loop at its next cycle, the API at its
next request), so rows ingested through the API are validated against the very policy the loop
checks them with. An invalid edit keeps the last valid policy in force, logs why, and sets
``reoptd_policy_valid{model}`` to 0 until the file is fixed.

Who calls it: the daemon builds one watcher for all its policies and hands it to every
``ModelLoop`` and to ``create_app``; a loop built alone makes its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from reoptd.errors import ModelNotFound, PolicyError
from reoptd.metrics import Metrics
from reoptd.policy import Policy, load_policy

log = logging.getLogger("reoptd.loop.watcher")


class PolicyWatcher:
    """The policies in force, by model name. Building one does no I/O; ``start`` notes the
    files' current stamps, ``refresh`` re-reads a file that changed since."""

    def __init__(self, policies: Iterable[Policy], metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self._policies = {p.model: p for p in policies}
        self._stamps: dict[str, tuple[int, int] | None] = {}
        self._lock = threading.Lock()

    def __contains__(self, name: object) -> bool:
        return name in self._policies

    def names(self) -> list[str]:
        return sorted(self._policies)

    def policy(self, name: str) -> Policy:
        """The policy in force for ``name`` (no file is read)."""
        try:
            return self._policies[name]
        except KeyError:
            known = ", ".join(sorted(self._policies)) or "none"
            raise ModelNotFound(name, f"the daemon runs policies for: {known}") from None

    def get(self, name: str) -> Policy | None:
        return self._policies.get(name)

    def put(self, policy: Policy) -> None:
        """Put ``policy`` in force for its model (an in-process change, such as a test's)."""
        with self._lock:
            self._policies[policy.model] = policy

    def start(self, name: str | None = None) -> None:
        """Note the stamps of the policy files (of ``name``, or all): edits from now on reload."""
        with self._lock:
            for model in [name] if name is not None else list(self._policies):
                path = self.policy(model).source
                self._stamps[model] = None if path is None else _stamp_or_none(path)

    def refresh(self, name: str) -> Policy:
        """Re-read ``name``'s policy file if it changed since last seen; the policy in force."""
        with self._lock:
            policy = self.policy(name)
            path = policy.source
            if path is None:
                return policy
            try:
                stamp = _stamp(path)
            except OSError:
                if self._stamps.get(name) is not None:
                    log.warning(
                        "%s: policy file %s is gone; the last policy keeps running", name, path
                    )
                    self._stamps[name] = None
                return policy
            seen = self._stamps.get(name)
            self._stamps[name] = stamp
            if seen is None or stamp == seen:
                return policy
            new = self._load(name, path)
            if new is None:
                return policy
            self._policies[name] = new
        if self.metrics is not None:
            self.metrics.declare(new)  # policy-derived gauges follow the new file
        log.info("%s: policy reloaded from %s", name, path)
        return new

    def _load(self, name: str, path: Path) -> Policy | None:
        try:
            policy = load_policy(path)
            if policy.model != name:
                raise PolicyError(
                    str(path),
                    [
                        f"{path}: model renamed from {name!r} to {policy.model!r};"
                        " a new name is a new model: restart the daemon to pick it up"
                    ],
                )
        except PolicyError as exc:
            problems = exc.problems
        except Exception as exc:  # whatever the file holds, the cycle goes on with the last one
            log.exception("%s: reading the edited policy %s failed", name, path)
            problems = [f"{path}: cannot be read: {type(exc).__name__}: {exc}"]
        else:
            return policy
        if self.metrics is not None:
            self.metrics.policy_valid.labels(name).set(0)
        log.error(
            "%s: policy edit rejected, the last valid policy keeps running:\n  %s",
            name,
            "\n  ".join(problems),
        )
        return None


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _stamp_or_none(path: Path) -> tuple[int, int] | None:
    try:
        return _stamp(path)
    except OSError:
        return None
