"""What happens to a challenger that won, and to a champion that does worse live.

- ``register`` then ``place``: a run's challenger becomes a version (its artifact and
  reference stored); one that won validation is promoted (``promote.mode: auto``), waits for
  approval (``manual``) or goes into shadow (``shadow``); one that lost is rejected.
- ``judge`` / ``act``, each cycle: a challenger in shadow is scored against the champion on
  labelled rows neither trained on, and promoted after ``promote.shadow_checks`` wins (a loss
  rejects it); after a promotion, the guard (``promote.rollback``) scores the previous champion
  the same way and rolls back if the new one is worse by more than ``rollback.drop``.

Who calls it: ``ModelLoop``. ``judge`` only measures; the cycle records the verdicts on the
check, then ``act`` changes the champion (so the stored check lists every verdict it acted on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from reoptd.cycle.reference import pack
from reoptd.models import Model
from reoptd.monitor import Champion, CheckResult, evaluate
from reoptd.optimize import RunResult
from reoptd.policy import Policy
from reoptd.signals import GuardVerdict, Signals, Verdict
from reoptd.store import Store, VersionRecord

log = logging.getLogger("reoptd.loop.promotion")

#: labelled rows a shadow challenger needs in a window to be scored against the champion
SHADOW_MIN_ROWS = 30


@dataclass
class Judgement:
    """This cycle's verdicts: the guard's (with the rollback reason if it rolls back), and the
    shadow challenger's."""

    guard: GuardVerdict | None = None
    rollback: str | None = None
    shadow: Verdict | None = None


class Promotion:
    """Promotion modes, shadow scoring and the post-promotion guard of one model."""

    def __init__(self, store: Store, load: Callable[[VersionRecord], Model]) -> None:
        self.store = store
        self.load = load  # another version's model (cached by the loop)

    # -- a new challenger --------------------------------------------------------------------

    def register(
        self, policy: Policy, result: RunResult, now: datetime, trigger: str, parent: int | None
    ) -> VersionRecord:
        """Store a run's challenger as a new version (status ``candidate``)."""
        ctx = result.ctx
        assert ctx.challenger is not None
        ts = ctx.train[policy.timestamp]
        validate, compress = result.steps.get("validate", {}), result.steps.get("compress", {})
        return self.store.add_version(
            policy.model,
            model_bytes=ctx.challenger.to_bytes(),
            reference_bytes=pack(policy, ctx.train, ctx.holdout),
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
                "latency_seconds": validate.get("latency_seconds"),
                "size_bytes": validate.get("size_bytes"),
                "holdout_start": _iso(ctx.holdout[policy.timestamp].min()),
                "holdout_end": _iso(ctx.holdout[policy.timestamp].max()),
                "compression": compress.get("chosen_candidate"),
            },
            train_rows=len(ctx.train),
            # datetimes hold microseconds: round outwards so the range still covers every row
            train_start=ts.min().floor("us").to_pydatetime(),
            train_end=ts.max().ceil("us").to_pydatetime(),
        )

    def place(
        self,
        policy: Policy,
        version: int,
        *,
        won: bool,
        reason: str,
        has_champion: bool,
        now: datetime,
    ) -> tuple[str, str]:
        """Promote, hold or reject a registered challenger; its run's (outcome, reason)."""
        name, store = policy.model, self.store
        # Without a champion there is nothing to protect: the first version is promoted
        # whatever the mode.
        mode = policy.promote.mode if has_champion else "auto"
        if not won:
            store.set_status(name, version, "rejected")
            return "rejected", reason
        if mode == "shadow":
            for old in store.versions(name):
                if old.status == "shadow":  # a newer challenger replaces the one in shadow
                    store.set_status(name, old.version, "rejected")
            store.set_status(name, version, "shadow")
            return (
                "shadow",
                f"{reason}; in shadow until it wins {policy.promote.shadow_checks} checks",
            )
        if mode == "manual":
            store.set_status(name, version, "pending")
            return "pending", f"{reason}; waiting for approval (reoptd models approve)"
        store.promote(name, version, at=now, reason=reason)
        return "promoted", reason

    # -- each cycle ----------------------------------------------------------------------------

    def judge(
        self, policy: Policy, now: datetime, champion: Champion, result: CheckResult
    ) -> Judgement:
        """Score the guard's predecessor and the shadow challenger; change nothing."""
        judgement = Judgement()
        self._guard(policy, now, champion, result, judgement)
        if judgement.rollback is None:
            judgement.shadow = self._shadow(policy, champion, result)
        return judgement

    def act(self, policy: Policy, now: datetime, champion: Champion, judgement: Judgement) -> bool:
        """Roll back, promote or reject as judged (the check is stored); True if the champion
        changed."""
        name = policy.model
        if judgement.rollback is not None:
            self.store.rollback(name, at=now, reason=judgement.rollback)
            log.warning("%s: rolled back: %s", name, judgement.rollback)
            return True
        verdict = judgement.shadow
        if verdict is None:
            return False
        if not verdict.better:
            self.store.set_status(name, verdict.version, "rejected")
            log.info(
                "%s: shadow v%d lost (%s %.4f vs champion %.4f on %d rows); rejected",
                name,
                verdict.version,
                verdict.metric,
                verdict.value,
                verdict.champion,
                verdict.rows,
            )
            return False
        needed = policy.promote.shadow_checks
        judged = [
            shadow
            for c in self.store.checks(name, limit=needed * 4)
            if (shadow := Signals.from_json(c.signals).shadow) is not None
            and shadow.version == verdict.version
        ]
        if len(judged) < needed:
            return False
        reason = (
            f"shadow v{verdict.version} beat champion v{champion.version} in"
            f" {len(judged)}/{needed} checks on rows it never saw"
        )
        self.store.promote(name, verdict.version, at=now, reason=reason)
        log.info("%s: %s: promoted", name, reason)
        return True

    def _guard(
        self,
        policy: Policy,
        now: datetime,
        champion: Champion,
        result: CheckResult,
        judgement: Judgement,
    ) -> None:
        """After a promotion: does the new champion do worse live than its predecessor?"""
        spec = policy.promote.rollback
        if spec is None:
            return
        name = policy.model
        events = [e for e in self.store.events(name) if e.to_version == champion.version]
        if not events or events[-1].from_version is None or events[-1].kind != "promote":
            return
        promoted = events[-1]
        if now - promoted.at > spec.within:
            return
        previous = self.store.version(name, events[-1].from_version)
        rows = unseen(policy, result, promoted.at)
        if len(rows) < spec.min_labels:
            return
        verdict = self._compare(policy, previous, champion, rows)
        worse = verdict.value - verdict.champion
        if not policy.higher_is_better():
            worse = -worse
        judgement.guard = GuardVerdict(**verdict.model_dump(), drop=worse)
        if worse > spec.drop:
            judgement.rollback = (
                f"guard: champion v{champion.version} {verdict.metric} {verdict.champion:.4f}"
                f" is {worse:.4f} worse than v{previous.version} ({verdict.value:.4f}) on"
                f" {verdict.rows} live rows since its promotion (> {spec.drop})"
            )

    def _shadow(self, policy: Policy, champion: Champion, result: CheckResult) -> Verdict | None:
        """The newest challenger in shadow against the champion, on rows it never saw."""
        shadows = [v for v in self.store.versions(policy.model) if v.status == "shadow"]
        if not shadows:
            return None
        shadow = shadows[-1]
        trained = shadow.train_end
        assert trained is not None  # set on every registered version
        since = max(trained, champion.trained_until or trained)
        rows = unseen(policy, result, since)
        if len(rows) < SHADOW_MIN_ROWS:
            return None
        return self._compare(policy, shadow, champion, rows)

    def _compare(
        self, policy: Policy, other: VersionRecord, champion: Champion, rows: pd.DataFrame
    ) -> Verdict:
        metric = policy.metric
        theirs = evaluate(self.load(other), rows, policy.target, [metric], policy.promote.costs)[
            metric
        ]
        ours = evaluate(champion.model, rows, policy.target, [metric], policy.promote.costs)[metric]
        better = theirs > ours if policy.higher_is_better() else theirs < ours
        return Verdict(
            version=other.version,
            metric=metric,
            value=theirs,
            champion=ours,
            rows=len(rows),
            better=bool(better),
        )


def unseen(policy: Policy, result: CheckResult, after: datetime | None) -> pd.DataFrame:
    """Labelled rows of this check newer than ``after`` (rows a model never trained on)."""
    rows = result.labelled
    if rows is None or rows.empty or after is None:
        return rows if rows is not None else pd.DataFrame()
    return rows[rows[policy.timestamp] > pd.Timestamp(after)]


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()
