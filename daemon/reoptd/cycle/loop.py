"""The one code path: check -> decide -> optimize -> promote, for one model at one instant.

The live service calls ``ModelLoop.cycle`` from APScheduler, the tests call it with a simulated
clock's time, and so will the backtester. Nothing here reads the wall clock for "now": it is
always an argument. Durations of work are measured with ``time.perf_counter``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from reoptd.data import Source, open_source
from reoptd.errors import ArtifactError, DataError, EmptyWindow, OptimizeError, PolicyError
from reoptd.metrics import Metrics
from reoptd.models import Model, load_model
from reoptd.monitor import Champion, CheckResult, check, evaluate
from reoptd.monitor._backfill import backfill
from reoptd.optimize import RunResult, run_pipeline
from reoptd.policy import Decision, Policy, checks_needed, decide, load_policy
from reoptd.registry import CheckRow, DecisionRow, ModelRow, Registry, RunRow, VersionRow

log = logging.getLogger("reoptd.loop")


@dataclass
class CycleOutcome:
    """What one cycle did, for callers that want more than the log line."""

    check: CheckRow | None = None
    decision: Decision | None = None
    run: RunRow | None = None


class ModelLoop:
    """Runs cycles for one model. Holds the loaded champion between cycles (reloaded on change)."""

    def __init__(
        self,
        policy: Policy,
        registry: Registry,
        metrics: Metrics,
        source: Source | None = None,
    ) -> None:
        self.policy = policy
        self.registry = registry
        self.metrics = metrics
        self.source = source if source is not None else open_source(policy, registry)
        self._champion: Champion | None = None
        self._stamp: tuple[int, int] | None = None
        self._snapshot: Policy | None = None  # the policy last written to the model's row
        self._model_id: int | None = None
        self._others: dict[int, object] = {}  # a shadow or previous champion, loaded once
        self.progress = False  # progress bars for long steps (the CLI turns them on)
        if policy.source is not None:
            with contextlib.suppress(OSError):
                self._stamp = _stamp(policy.source)
        metrics.declare(policy)
        # A run still "running" in the database was cut off by a crash or a kill: say so.
        registry.close_interrupted_runs(policy.model)

    @property
    def name(self) -> str:
        return self.policy.model

    def update_policy(self, policy: Policy) -> None:
        self.policy = policy
        self.source = open_source(policy, self.registry)
        self._champion = None  # drift settings may have changed: rebuild the detector

    def reload_if_changed(self) -> bool:
        """Re-read the policy file if it changed since it was loaded; True if a new policy is in
        force. An invalid edit keeps the last valid policy running, logs why, and sets
        ``reoptd_policy_valid{model}`` to 0 until the file is fixed."""
        path = self.policy.source
        if path is None:
            return False
        try:
            stamp = _stamp(path)
        except OSError:
            if self._stamp is not None:
                log.warning(
                    "%s: policy file %s is gone; the last policy keeps running", self.name, path
                )
                self._stamp = None
            return False
        if self._stamp is None:
            self._stamp = stamp
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            policy = load_policy(path)
            if policy.model != self.name:
                raise PolicyError(
                    str(path),
                    [
                        f"{path}: model renamed from {self.name!r} to {policy.model!r};"
                        " a new name is a new model: restart the daemon to pick it up"
                    ],
                )
        except PolicyError as exc:
            self.metrics.policy_valid.labels(self.name).set(0)
            log.error(
                "%s: policy edit rejected, the last valid policy keeps running:\n  %s",
                self.name,
                "\n  ".join(exc.problems),
            )
            return False
        self.update_policy(policy)
        self.metrics.declare(policy)
        self.metrics.policy_valid.labels(self.name).set(1)
        log.info("%s: policy reloaded from %s", self.name, path)
        return True

    # -- the cycle ------------------------------------------------------------------------------

    def _model(self, now: datetime) -> ModelRow:
        """The model's row, read fresh (a CLI promotion may have changed the champion). The
        policy snapshot is written only when this loop's policy is new, not on every check."""
        if self._snapshot is not self.policy:
            row = self.registry.ensure_model(self.policy, now)
            self._snapshot = self.policy
        else:
            row = self.registry.model(self.name)
        self._model_id = row.id
        return row

    def cycle(self, now: datetime) -> CycleOutcome:
        """One monitoring cycle at ``now``; a first cycle trains and promotes version 1."""
        model = self._model(now)
        if model.champion_version is None:
            return CycleOutcome(run=self.optimize(now, trigger="bootstrap"))
        try:
            champion = self.champion()
        except ArtifactError as exc:
            log.error("%s: champion v%s unusable: %s", self.name, model.champion_version, exc)
            row = self._record_check(now, "failed", f"champion artifact: {exc}", None)
            return CycleOutcome(check=row)
        row, result = self._check(now, champion)
        self._backfill(now, champion, row)
        outcome = CycleOutcome(check=row)
        if row.status != "ok" or result is None:
            return outcome
        if self._guard(now, champion, result, row) or self._shadow(now, champion, result, row):
            return outcome  # the champion changed: the next check judges the new one
        state = self.registry.state(self.name, now)
        # a margin over the longest streak: failed and skipped checks do not count towards it
        history = self.registry.history(self.name, limit=checks_needed(self.policy) + 10)
        decision = decide(self.policy, history, state, now)
        outcome.decision = decision
        stored = self.registry.add(
            DecisionRow(
                model_id=model.id,
                check_id=row.id,
                at=now,
                fire=decision.fire,
                triggers=decision.triggers,
                reasons=decision.summary,
            )
        )
        self.metrics.decisions.labels(self.name, "fire" if decision.fire else "hold").inc()
        log.info(
            "%s: decision %s (%s)",
            self.name,
            "RE-OPTIMIZE" if decision.fire else "hold",
            decision.summary,
        )
        if decision.fire:
            outcome.run = self.optimize(now, trigger=decision.trigger, decision_id=stored.id)
        return outcome

    def _check(self, now: datetime, champion: Champion) -> tuple[CheckRow, CheckResult | None]:
        try:
            result = check(self.policy, self.source, champion, now)
        except EmptyWindow as exc:
            log.warning("%s: check skipped: %s", self.name, exc)
            return self._record_check(now, "skipped", str(exc), champion.version), None
        except DataError as exc:
            log.error("%s: check failed: %s", self.name, exc)
            self.metrics.data_errors.labels(self.name).inc()
            return self._record_check(now, "failed", str(exc), champion.version), None
        row = self._record_check(now, "ok", "", champion.version, result)
        m, name = self.metrics, self.name
        m.drift_share.labels(name).set(result.drift_share)
        m.dataset_drift.labels(name).set(
            int(result.drift_share >= self.policy.monitor.drift.drift_share)
        )
        for feature in m.features(name, result.features):
            drift = result.features[feature]
            if drift.score is None:  # not tested: reoptd_feature_tested says so
                continue
            m.feature_drift_score.labels(name, feature).set(drift.score)
            m.feature_drifted.labels(name, feature).set(int(drift.drifted))
            if drift.threshold is not None:
                m.feature_drift_threshold.labels(name, feature).set(drift.threshold)
        for metric, value in result.metrics.items():
            m.model_metric.labels(name, metric).set(value)
        m.labelled_rows.labels(name).set(result.labelled_rows)
        if result.prediction_drift is not None and result.prediction_drift.tested:
            m.prediction_drift_score.labels(name).set(result.prediction_drift.score)
            m.prediction_drifted.labels(name).set(int(result.prediction_drift.drifted))
        m.observe_monitoring(name, result)
        m.export_label_signals(name, result.estimated, result.extra)
        if result.data_problem:
            m.data_errors.labels(name).inc()
            log.error("%s: %s", name, result.data_problem)
        for feature, why in result.untested.items():
            log.warning("%s: %s %s", name, feature, why)
        m.rows_seen.labels(name).inc(result.rows)
        m.check_duration.labels(name).observe(result.seconds)
        m.last_check.labels(name).set(now.timestamp())
        drifted = [f for f, d in result.features.items() if d.drifted]
        shown = ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items())
        log.info(
            "%s: check v%d rows=%d labelled=%d drift_share=%.2f%s%s",
            name,
            champion.version,
            result.rows,
            result.labelled_rows,
            result.drift_share,
            f" drifted=[{', '.join(drifted)}]" if drifted else "",
            f" {shown}" if shown else "",
        )
        return row, result

    def _record_check(
        self,
        now: datetime,
        status: str,
        reason: str,
        version: int | None,
        result: CheckResult | None = None,
    ) -> CheckRow:
        self.metrics.checks.labels(self.name, status).inc()
        row = CheckRow(
            model_id=self._model_id,  # set by the cycle's _model() before any check is recorded
            at=now,
            window_start=now - self.policy.monitor.window,
            window_end=now,
            status=status,
            reason=reason,
            champion_version=version,
        )
        if result is not None:
            row.rows = result.rows
            row.labelled_rows = result.labelled_rows
            row.drift_share = result.drift_share
            row.dataset_drift = result.drift_share >= self.policy.monitor.drift.drift_share
            row.features = {k: v.to_dict() for k, v in result.features.items()}
            row.metrics = result.metrics
            row.signals = result.signals
            row.seconds = result.seconds
        return self.registry.add(row)

    # -- re-optimization ------------------------------------------------------------------------

    def optimize(
        self, now: datetime, trigger: str = "manual", decision_id: int | None = None
    ) -> RunRow:
        """Run the policy's pipeline; register the challenger; promote it if it won."""
        model = self._model(now)
        champion: Champion | None = None
        if model.champion_version is not None:
            champion = self.champion()
        run = self.registry.add(
            RunRow(
                model_id=model.id,
                decision_id=decision_id,
                started_at=now,
                trigger=trigger,
                champion_version=model.champion_version,
            )
        )
        log.info("%s: re-optimization started (trigger: %s)", self.name, trigger)
        try:
            champion_row = self.registry.champion(self.name) if champion is not None else None
            result = run_pipeline(
                self.policy,
                self.source,
                champion,
                now,
                storage=self.registry.url,
                study_prefix=f"reoptd.{self.name}",
                champion_params=dict(champion_row.params) if champion_row else {},
                progress=self.progress,
            )
            version = self._register(result, now, trigger, model.champion_version)
            run.challenger_version = version.version
            run.steps = result.steps
            run.seconds = result.seconds
            for step, record in result.steps.items():
                self.metrics.step_duration.labels(self.name, step).observe(record["seconds"])
            self.metrics.reoptimization_duration.labels(self.name).observe(result.seconds)
            # Without a champion there is nothing to protect: the first version is promoted
            # whatever the mode.
            mode = self.policy.promote.mode if champion is not None else "auto"
            if result.ctx.promote and mode == "shadow":
                for old in self.registry.versions(self.name):
                    if old.status == "shadow":  # a newer challenger replaces the one in shadow
                        self.registry.set_status(self.name, old.version, "rejected")
                self.registry.set_status(self.name, version.version, "shadow")
                run.outcome = "shadow"
                result.ctx.reason += (
                    f"; in shadow until it wins {self.policy.promote.shadow_checks} checks"
                )
            elif result.ctx.promote and mode == "manual":
                self.registry.set_status(self.name, version.version, "pending")
                run.outcome = "pending"
                result.ctx.reason += "; waiting for approval (reoptd models approve)"
            elif result.ctx.promote:
                self.registry.promote(self.name, version.version, at=now, reason=result.ctx.reason)
                run.outcome = "promoted"
            else:
                self.registry.set_status(self.name, version.version, "rejected")
                run.outcome = "rejected"
            run.reason = result.ctx.reason
        except (OptimizeError, DataError, ArtifactError) as exc:
            run.outcome, run.reason = "failed", str(exc)
        run.finished_at = now
        self.registry.add(run)
        self.metrics.reoptimizations.labels(self.name, trigger, run.outcome).inc()
        log.info(
            "%s: re-optimization %s%s: %s",
            self.name,
            run.outcome,
            f" v{run.challenger_version}" if run.challenger_version else "",
            run.reason,
        )
        return run

    def _register(
        self, result: RunResult, now: datetime, trigger: str, parent: int | None
    ) -> VersionRow:
        ctx = result.ctx
        assert ctx.challenger is not None
        policy = self.policy
        kept = [c for c in (*policy.features.monitored, policy.target) if c in ctx.train.columns]
        reference = ctx.train[kept]
        if len(reference) > policy.monitor.reference_rows:
            reference = reference.sample(policy.monitor.reference_rows, random_state=0)
        # The holdout rows (labelled, never trained on) ride along, marked: label-free estimation
        # calibrates on them, since the training rows flatter the model.
        holdout = ctx.holdout[kept]
        if len(holdout) > policy.monitor.reference_rows:
            holdout = holdout.sample(policy.monitor.reference_rows, random_state=0)
        reference = pd.concat(
            [reference.assign(**{HOLDOUT: False}), holdout.assign(**{HOLDOUT: True})],
            ignore_index=True,
        )
        buffer = io.BytesIO()
        reference.reset_index(drop=True).to_parquet(buffer, index=False)
        ts = ctx.train[policy.timestamp]
        return self.registry.add_version(
            self.name,
            model_bytes=ctx.challenger.to_bytes(),
            reference_bytes=buffer.getvalue(),
            at=now,
            trigger=trigger,
            parent_version=parent,
            estimator=policy.train.learner,
            params=ctx.challenger.params,
            metrics={
                "metric": policy.metric,
                "holdout": ctx.challenger_metrics,
                "champion_on_holdout": ctx.champion_metrics,
                "holdout_rows": len(ctx.holdout),
                "latency_seconds": result.steps.get("validate", {}).get("latency_seconds"),
                "size_bytes": result.steps.get("validate", {}).get("size_bytes"),
                "holdout_start": _iso(ctx.holdout[policy.timestamp].min()),
                "holdout_end": _iso(ctx.holdout[policy.timestamp].max()),
                "compression": result.steps.get("compress", {}).get("chosen_candidate"),
            },
            train_rows=len(ctx.train),
            train_start=ts.min().to_pydatetime(),
            train_end=ts.max().to_pydatetime(),
        )

    # -- shadow challengers and the post-promotion guard -----------------------------------------

    def _unseen(self, result: CheckResult, after: datetime | None) -> pd.DataFrame:
        """Labelled rows of this check newer than ``after`` (rows a model never trained on)."""
        rows = result.labelled
        if rows is None or rows.empty or after is None:
            return rows if rows is not None else pd.DataFrame()
        return rows[rows[self.policy.timestamp] > pd.Timestamp(after)]

    def _compare(self, other: VersionRow, champion: Champion, rows: pd.DataFrame) -> dict:
        metric = self.policy.metric
        theirs = evaluate(self._load(other), rows, self.policy.target, [metric])[metric]
        ours = evaluate(champion.model, rows, self.policy.target, [metric])[metric]
        better = theirs > ours if self.policy.higher_is_better() else theirs < ours
        return {
            "version": other.version,
            "metric": metric,
            "value": theirs,
            "champion": ours,
            "rows": len(rows),
            "better": bool(better),
        }

    def _shadow(
        self, now: datetime, champion: Champion, result: CheckResult, row: CheckRow
    ) -> bool:
        """Score a challenger in shadow on rows it never saw; promote it after enough wins."""
        promote = self.policy.promote
        shadows = [v for v in self.registry.versions(self.name) if v.status == "shadow"]
        if not shadows:
            return False
        shadow = shadows[-1]
        rows = self._unseen(
            result, max(shadow.train_end, champion.trained_until or shadow.train_end)
        )
        if len(rows) < 30:
            return False
        verdict = self._compare(shadow, champion, rows)
        self._annotate(row, "shadow", verdict)
        judged = [
            c.signals["shadow"]
            for c in self.registry.checks(self.name, limit=promote.shadow_checks * 4)
            if (c.signals or {}).get("shadow", {}).get("version") == shadow.version
        ]
        if not verdict["better"]:
            self.registry.set_status(self.name, shadow.version, "rejected")
            log.info(
                "%s: shadow v%d lost (%s %.4f vs champion %.4f on %d rows); rejected",
                self.name,
                shadow.version,
                verdict["metric"],
                verdict["value"],
                verdict["champion"],
                verdict["rows"],
            )
            return False
        if len(judged) < promote.shadow_checks:
            return False
        reason = (
            f"shadow v{shadow.version} beat champion v{champion.version} in"
            f" {len(judged)}/{promote.shadow_checks} checks on rows it never saw"
        )
        self.registry.promote(self.name, shadow.version, at=now, reason=reason)
        log.info("%s: %s: promoted", self.name, reason)
        return True

    def _guard(self, now: datetime, champion: Champion, result: CheckResult, row: CheckRow) -> bool:
        """After a promotion, roll back if the new champion does worse live than its predecessor."""
        spec = self.policy.promote.rollback
        if spec is None:
            return False
        events = [e for e in self.registry.events(self.name) if e.to_version == champion.version]
        if not events or events[-1].from_version is None or events[-1].kind != "promote":
            return False
        promoted = events[-1]
        if now - promoted.at > spec.within:
            return False
        previous = self.registry.version(self.name, promoted.from_version)
        rows = self._unseen(result, promoted.at)
        if len(rows) < spec.min_labels:
            return False
        verdict = self._compare(previous, champion, rows)
        worse = verdict["value"] - verdict["champion"]
        if not self.policy.higher_is_better():
            worse = -worse
        verdict["drop"] = worse
        self._annotate(row, "guard", verdict)
        if worse <= spec.drop:
            return False
        reason = (
            f"guard: champion v{champion.version} {verdict['metric']} {verdict['champion']:.4f}"
            f" is {worse:.4f} worse than v{previous.version} ({verdict['value']:.4f}) on"
            f" {verdict['rows']} live rows since its promotion (> {spec.drop})"
        )
        self.registry.rollback(self.name, at=now, reason=reason)
        log.warning("%s: rolled back: %s", self.name, reason)
        return True

    def _backfill(self, now: datetime, champion: Champion, current: CheckRow) -> None:
        """Re-score past windows whose labels came in since they were checked (see
        ``monitor._backfill``); the re-scored windows are listed on the current check."""

        def model_of(version: int) -> Model:
            if version == champion.version:
                return champion.model
            return self._load(self.registry.version(self.name, version))

        done = backfill(self.policy, self.source, self.registry, model_of, now, skip=current.id)
        for result in done:
            self.metrics.export_backfill(self.name, result.metrics)
        if done:
            self._annotate(current, "backfilled", [r.summary() for r in done])
        self._label_health(now, current)

    def _label_health(self, now: datetime, current: CheckRow) -> None:
        """For a separate label feed: labels that joined no prediction, and duplicate ids."""
        health = getattr(self.source, "label_health", None)
        if health is None or current.status != "ok":
            return
        monitor = self.policy.monitor
        span = monitor.window + (monitor.backfill.within or timedelta(0))
        try:
            stats = health(now - span, now - monitor.window, now)
        except DataError as exc:
            log.warning("%s: label join not measured: %s", self.name, exc)
            return
        self.metrics.export_label_health(self.name, stats)
        self._annotate(current, "labels", stats)

    def _annotate(self, row: CheckRow, key: str, value: object) -> None:
        row.signals = {**(row.signals or {}), key: value}
        self.registry.add(row)

    def _load(self, version: VersionRow):
        cached = self._others.get(version.version)
        if cached is None:
            cached = load_model(self.registry.load_artifact(version))
            self._others = {version.version: cached}
        return cached

    def champion(self) -> Champion:
        """The champion with its reference sample, loaded (and sha256-verified) once per version."""
        row = self.registry.champion(self.name)
        if row is None:
            raise ArtifactError(f"model {self.name!r} has no champion")
        if self._champion is None or self._champion.version != row.version:
            started = time.perf_counter()
            model = load_model(self.registry.load_artifact(row))
            reference = pd.read_parquet(io.BytesIO(self.registry.load_reference(row)))
            reference, calibration = split_reference(reference)
            self._champion = Champion(row.version, model, reference, row.train_end, calibration)
            log.debug(
                "%s: loaded v%d in %.2fs", self.name, row.version, time.perf_counter() - started
            )
        return self._champion


#: the column that marks the holdout rows stored beside a version's drift reference
HOLDOUT = "__reoptd_holdout__"


def split_reference(stored: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A stored reference as (drift reference: training rows, calibration: holdout rows).
    References written before holdout rows were kept have no calibration part."""
    if HOLDOUT not in stored.columns:
        return stored, None
    mark = stored[HOLDOUT].astype(bool)
    reference = stored[~mark].drop(columns=HOLDOUT).reset_index(drop=True)
    return reference, stored[mark].drop(columns=HOLDOUT).reset_index(drop=True)


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _iso(value: object) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()
