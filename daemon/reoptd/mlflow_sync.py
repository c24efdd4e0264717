"""MLflow registry sync: every version in MLflow, the ``champion``/``challenger`` aliases in step.

With ``REOPTD_MLFLOW_URI`` set, ``MlflowSync`` mirrors the store into an MLflow tracking server
and model registry: each version of a model becomes an MLflow run (experiment ``reoptd/<model>``:
the estimator's parameters, the holdout metrics, the model and reference artifacts) registered as
a version of the registered model of the same name; the alias ``champion`` points at the
champion, ``challenger`` at the newest version in shadow or waiting for approval. Tags
(``reoptd.*``) carry the version number, status, trigger, the decision's reasons, the run's
outcome and the compression chosen.

The sync *reconciles* rather than sends events: each pass compares the store with MLflow and
does what is missing (a version whose ``reoptd.version`` tag MLflow lacks is logged; an alias
pointing elsewhere is moved). So nothing is lost when MLflow is down or the daemon restarts:
the store is the source of truth, and the next pass catches up. A pass that fails is logged,
counted (``on_error``: ``reoptd_mlflow_sync_errors_total{model}``) and retried at the next one;
it never blocks a promotion.

Who calls it: it is a store listener (``Store.listeners``), so a promotion or rollback from the
loop, the API or the CLI syncs that model at once (on the daemon's worker thread if it runs,
inline otherwise); the daemon's worker also syncs every model every ``interval`` seconds, which
brings in versions that were registered without a champion change (rejected, pending, shadow).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reoptd.store import EventRecord, Store, VersionRecord

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("reoptd.mlflow")

#: the tag that ties an MLflow run and model version to a reoptd version
VERSION_TAG = "reoptd.version"
#: the statuses whose newest version gets the ``challenger`` alias
CHALLENGER_STATUSES = ("shadow", "pending")
#: MLflow refuses longer tag values
TAG_LIMIT = 5000


class MlflowSync:
    """Mirrors ``store`` into the MLflow server at ``uri``; a ``Store`` listener."""

    def __init__(
        self,
        store: Store,
        uri: str,
        *,
        interval: float = 60.0,
        timeout: int = 10,
        on_error: Callable[[str], None] | None = None,
        client: MlflowClient | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"MLflow sync interval must be positive, got: {interval}")
        # Our own retry is the next pass: MLflow's client would otherwise retry each request
        # for minutes (7 tries with backoff) while a CLI command waits. The operator's own
        # MLFLOW_HTTP_REQUEST_* variables win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout))
        # no usage reports to MLflow's servers from a daemon that talks only to the operator's
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        # a CLI command's output is reoptd's: no "View run at" lines, no "waiting for the
        # version" notes (our own log says what was synced)
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        logging.getLogger("mlflow.store.model_registry.abstract_store").setLevel(logging.WARNING)
        if client is None:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.store = store
        self.uri = uri
        self.client = client
        self.interval = interval
        self.on_error = on_error
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one pass at a time (listener and worker)
        self._thread: threading.Thread | None = None

    # -- as a listener and a worker --------------------------------------------------------------

    def __call__(self, model: str, event: EventRecord) -> None:
        """A champion changed: sync now (the worker's next pass, or inline without a worker)."""
        if self._thread is not None and self._thread.is_alive():
            self._wake.set()
        else:
            self.sync_safely(model)

    def start(self) -> None:
        """Sync every model now and then every ``interval`` seconds, on a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="reoptd-mlflow", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sync_all()
            self._wake.wait(self.interval)
            self._wake.clear()

    def sync_all(self) -> int:
        """One pass over every model; how many failed (each logged and counted)."""
        try:
            names = [m.name for m in self.store.models()]
        except Exception as exc:  # the store is away: the next pass retries
            log.warning("MLflow sync: cannot list the models: %s", exc)
            return 1
        return sum(not self.sync_safely(name) for name in names)

    def sync_safely(self, name: str) -> bool:
        """``sync(name)``; a failure is logged and counted, never raised. True if in sync."""
        try:
            self.sync(name)
            return True
        except Exception as exc:  # any failure of MLflow or the network: retried next pass
            log.warning(
                "%s: MLflow sync to %s failed, retried at the next pass: %s: %s",
                name,
                self.uri,
                type(exc).__name__,
                _first_line(exc),
            )
            if self.on_error is not None:
                self.on_error(name)
            return False

    # -- one model -------------------------------------------------------------------------------

    def sync(self, name: str) -> dict[int, str]:
        """Bring model ``name`` into MLflow: log and register the versions it lacks, update
        their status tags, move the aliases. Returns reoptd version -> MLflow version."""
        with self._lock:
            versions = self.store.versions(name)
            if not versions:
                return {}
            self._ensure_registered_model(name)
            known = self._registered(name)
            missing = [v for v in versions if v.version not in known]
            if missing:
                context = self._context(name)
                for version in missing:
                    known[version.version] = self._register(name, version, context)
                    log.info(
                        "%s: v%d logged to MLflow as version %s",
                        name,
                        version.version,
                        known[version.version],
                    )
            statuses = self._statuses(name)
            for version in versions:
                mlflow_version = known[version.version]
                if statuses.get(mlflow_version) != version.status:
                    self.client.set_model_version_tag(
                        name, mlflow_version, "reoptd.status", version.status
                    )
            self._aliases(name, versions, known)
            return known

    def _ensure_registered_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(
                name,
                tags={"reoptd.model": name},
                description=f"Versions of {name} managed by reoptd",
            )

    def _registered(self, name: str) -> dict[int, str]:
        """reoptd version -> MLflow version, from the ``reoptd.version`` tags."""
        found: dict[int, str] = {}
        for mv in self.client.search_model_versions(f"name = '{_quote(name)}'"):
            tag = mv.tags.get(VERSION_TAG)
            if tag is not None and tag.isdigit():
                found[int(tag)] = str(mv.version)
        return found

    def _statuses(self, name: str) -> dict[str, str | None]:
        return {
            str(mv.version): mv.tags.get("reoptd.status")
            for mv in self.client.search_model_versions(f"name = '{_quote(name)}'")
        }

    def _context(self, name: str) -> dict[int, dict[str, str]]:
        """Per version: the trigger's decision reasons and its run's outcome, from the store."""
        decisions = {d.id: d for d in self.store.decisions(name)}
        context: dict[int, dict[str, str]] = {}
        for run in self.store.runs(name):
            if run.challenger_version is None:
                continue
            tags = {"reoptd.outcome": f"{run.outcome}: {run.reason}"}
            decision = decisions.get(run.decision_id)
            if decision is not None:
                tags["reoptd.decision_reasons"] = decision.reasons
                tags["reoptd.triggers"] = ", ".join(decision.triggers)
            context[run.challenger_version] = tags
        return context

    def _register(
        self, name: str, version: VersionRecord, context: dict[int, dict[str, str]]
    ) -> str:
        """Log ``version`` as a run (reused if a pass was cut off after creating it), then
        register it; the MLflow version number."""
        adopted = version.metrics.get("adopted") or {}
        tags = _tags(name, version) | context.get(version.version, {})
        if adopted.get("mlflow_name") == name and adopted.get("mlflow_version"):
            # adopted from this very registered model: that version *is* it, tag it
            existing = str(adopted["mlflow_version"])
            for key, value in tags.items():
                self.client.set_model_version_tag(name, existing, key, value)
            return existing
        run_id = self._run_of(name, version, tags)
        run = self.client.get_run(run_id)
        mv = self.client.create_model_version(
            name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run_id,
            tags=tags,
            description=f"reoptd {name} v{version.version} ({version.trigger})",
        )
        return str(mv.version)

    def _run_of(self, name: str, version: VersionRecord, tags: dict[str, str]) -> str:
        from mlflow.entities import Metric, Param

        experiment = f"reoptd/{name}"
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id if found is not None else self.client.create_experiment(experiment)
        )
        previous = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`{VERSION_TAG}` = '{version.version}'"
        )
        finished = [r for r in previous if r.info.status == "FINISHED"]
        if finished:
            return str(finished[0].info.run_id)
        run = self.client.create_run(
            experiment_id, run_name=f"{name}-v{version.version}", tags=tags
        )
        run_id = str(run.info.run_id)
        stamp = int(version.created_at.timestamp() * 1000)
        metrics = [Metric(key, value, stamp, 0) for key, value in _numbers(version.metrics).items()]
        params = [
            Param(str(k)[:250], str(v)[:6000]) for k, v in sorted(version.params.items())[:100]
        ]
        self.client.log_batch(run_id, metrics=metrics, params=params)
        with tempfile.TemporaryDirectory(prefix="reoptd-mlflow-") as tmp:
            model = Path(tmp) / "model"
            model.mkdir()
            (model / "model.pkl").write_bytes(self.store.load_artifact(version))
            (model / "reference.parquet").write_bytes(self.store.load_reference(version))
            self.client.log_artifacts(run_id, str(model), "model")
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def _aliases(self, name: str, versions: list[VersionRecord], known: dict[int, str]) -> None:
        champion = self.store.model(name).champion_version
        waiting = [v.version for v in versions if v.status in CHALLENGER_STATUSES]
        wanted = {
            "champion": known.get(champion) if champion is not None else None,
            "challenger": known.get(waiting[-1]) if waiting else None,
        }
        current = dict(self.client.get_registered_model(name).aliases or {})
        for alias, target in wanted.items():
            have = current.get(alias)
            if target is None and have is not None:
                self.client.delete_registered_model_alias(name, alias)
            elif target is not None and str(have) != target:
                self.client.set_registered_model_alias(name, alias, target)
                log.info("%s: MLflow alias %s -> version %s", name, alias, target)


def _tags(name: str, version: VersionRecord) -> dict[str, str]:
    compression = version.metrics.get("compression")
    tags = {
        "reoptd.model": name,
        VERSION_TAG: str(version.version),
        "reoptd.status": version.status,
        "reoptd.trigger": version.trigger,
        "reoptd.estimator": version.estimator,
        "reoptd.sha256": version.sha256,
        "reoptd.parent_version": ""
        if version.parent_version is None
        else str(version.parent_version),
        "reoptd.metric": str(version.metrics.get("metric") or ""),
        "reoptd.compression": _compression(compression),
    }
    adopted = version.metrics.get("adopted")
    if isinstance(adopted, dict) and adopted.get("source"):
        tags["reoptd.adopted_from"] = str(adopted["source"])
    return {k: v[:TAG_LIMIT] for k, v in tags.items()}


def _compression(chosen: Any) -> str:
    if not chosen:
        return "none"
    if isinstance(chosen, dict):
        methods = chosen.get("methods") or []
        label = str(chosen.get("name") or "")
        return f"{label} ({', '.join(map(str, methods))})" if methods else label or "none"
    return str(chosen)


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics of a version, flat: ``holdout_f1``, ``champion_on_holdout_f1``,
    ``latency_seconds`` ..."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict) and key in ("holdout", "champion_on_holdout"):
            for inner, number in value.items():
                if isinstance(number, int | float) and not isinstance(number, bool):
                    flat[f"{key}_{inner}"] = float(number)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[key] = float(value)
    return flat


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
