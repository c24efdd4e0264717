"""Build every candidate the policy's methods allow, measure each one, and select.

Methods (plugins of ``reoptd.plugins.COMPRESS_METHODS``) chain in the order they declare, today
distill -> prune -> magnitude -> low_rank -> quantize | static_quantize; every non-empty subset
of the policy's methods, in that order and with at most one method that ends a chain (a quantized
network is not compressed further), is a candidate (an sklearn model only through a method that
takes any model: distill). Shared prefixes are built once:
``distill+prune+quantize`` reuses the ``distill+prune`` model. Who calls it: the compress step
(``reoptd.optimize._compress``) and ``bench/compression.py``.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from reoptd.errors import OptimizeError
from reoptd.models.torch import TorchMLP
from reoptd.monitor import evaluate, metric_names
from reoptd.optimize.compress._measure import latencies, size_bytes
from reoptd.optimize.compress._select import BASELINE, Candidate, Selection, select
from reoptd.plugins import COMPRESS_METHODS
from reoptd.policy import Policy

log = logging.getLogger("reoptd.compress")


@dataclass
class Plan:
    candidates: list[Candidate]
    selection: Selection
    batch_size: int

    @property
    def chosen(self) -> Candidate:
        return self.selection.chosen

    def record(self) -> dict[str, Any]:
        return {
            "candidates": [c.record(self.batch_size) for c in self.candidates],
            "chosen": self.chosen.name,
            "chosen_candidate": self.chosen.record(self.batch_size),
            "reason": self.selection.reason,
        }


def sequences(methods: list[str], torch_baseline: bool) -> list[tuple[str, ...]]:
    """The method chains to try, in the methods' order, shortest first."""
    plugins = sorted(
        (p for p in COMPRESS_METHODS.plugins() if p.name in methods), key=lambda p: p.order
    )
    ordered = [p.name for p in plugins]
    ends = {p.name for p in plugins if p.ends_chain}
    any_model = {p.name for p in plugins if p.any_model}
    chains = [
        combo
        for n in range(1, len(ordered) + 1)
        for combo in itertools.combinations(ordered, n)
        if (torch_baseline or combo[0] in any_model) and sum(m in ends for m in combo) <= 1
    ]
    return chains


def compress_model(
    baseline: Any,
    fit_rows: pd.DataFrame,
    valid_rows: pd.DataFrame,
    policy: Policy,
) -> Plan:
    """Candidates from ``baseline`` (learning on ``fit_rows``), measured on ``valid_rows``,
    which neither ``baseline`` nor the candidates may have trained on: an in-sample baseline
    would look better than it is and every candidate worse."""
    cfg = policy.compress
    target = policy.target
    names = metric_names(policy)
    batch_sizes = cfg.all_batch_sizes

    def score(name: str, methods: list[str], model: Any) -> Candidate:
        metric = evaluate(model, valid_rows, target, names)[policy.metric]
        return Candidate(name, methods, float(metric), size_bytes(model), {}, model)

    torch_baseline = isinstance(baseline, TorchMLP)
    starters = [m for m in cfg.methods if COMPRESS_METHODS.get(m).any_model]
    if not torch_baseline and not starters:
        raise OptimizeError(
            f"compress: model {policy.model!r} is not a torch model; only `distill` applies"
        )
    candidates = [score(BASELINE, [], baseline)]
    built: dict[tuple[str, ...], Any] = {(): baseline}
    for chain in sequences(cfg.methods, torch_baseline):
        try:
            method = COMPRESS_METHODS.get(chain[-1])
            built[chain] = method.apply(built[chain[:-1]], fit_rows, policy)
        except OptimizeError as exc:  # a method that does not apply to this chain is skipped
            log.info("%s: candidate %s skipped: %s", policy.model, "+".join(chain), exc)
            continue
        candidates.append(score("+".join(chain), list(chain), built[chain]))
    models = [c.model for c in candidates]
    for b in batch_sizes:
        timed = latencies(models, valid_rows, b, cfg.repetitions, cfg.threads, cfg.timer)
        for candidate, measured in zip(candidates, timed, strict=True):
            candidate.latency[b] = measured
    for candidate in candidates:
        log.info(
            "%s: candidate %s: %s %.4f, %d bytes, p50 %.3f ms at batch %d",
            policy.model,
            candidate.name,
            policy.metric,
            candidate.metric,
            candidate.size_bytes,
            candidate.latency[cfg.batch_size].p50_ms,
            cfg.batch_size,
        )
    selection = select(
        candidates,
        objective=cfg.objective,
        batch_size=cfg.batch_size,
        max_metric_drop=cfg.max_metric_drop,
        higher_is_better=policy.higher_is_better(),
        min_speedup=cfg.min_speedup,
    )
    return Plan(candidates, selection, cfg.batch_size)
