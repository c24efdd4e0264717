"""Build every candidate the policy's methods allow, measure each one, and select.

Methods chain in a fixed order, distill -> prune -> magnitude -> low_rank -> quantize |
static_quantize; every non-empty subset of the policy's methods, in that order and with at most
one of the two quantizations (a quantized network is not compressed further), is a candidate (an
sklearn model only through distill). Shared prefixes are built once:
``distill+prune+quantize`` reuses the ``distill+prune`` model. Who calls it: the compress step
(``reoptd.optimize._compress``) and ``bench/compression.py``.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reoptd.compress._distill import distill
from reoptd.compress._low_rank import low_rank
from reoptd.compress._measure import latencies, size_bytes
from reoptd.compress._prune import magnitude_prune, structured_prune
from reoptd.compress._quantize import quantize, static_quantize
from reoptd.compress._select import BASELINE, Candidate, Selection, select
from reoptd.errors import OptimizeError
from reoptd.models._torch import TorchMLP
from reoptd.monitor import evaluate, metric_names
from reoptd.policy import Policy
from reoptd.policy._schema import COMPRESS_METHODS, QUANTIZE_METHODS

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
    """The method chains to try, in the fixed order, shortest first."""
    ordered = [m for m in COMPRESS_METHODS if m in methods]
    chains = [
        combo
        for n in range(1, len(ordered) + 1)
        for combo in itertools.combinations(ordered, n)
        if (torch_baseline or combo[0] == "distill")
        and sum(m in QUANTIZE_METHODS for m in combo) <= 1
    ]
    return chains


def calibration_rows(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows of ``frame`` evenly spaced over it (all of them when it has fewer), so that
    calibration sees the whole training window, deterministically."""
    if len(frame) <= n:
        return frame
    return frame.iloc[np.linspace(0, len(frame) - 1, n).round().astype(int)]


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
    calibration = cfg.static_quantize.calibration_rows

    def apply(method: str, model: Any) -> TorchMLP:
        if method == "distill":
            d = cfg.distill
            return distill(
                model,
                fit_rows,
                fit_rows[target],
                hidden=d.hidden,
                temperature=d.temperature,
                alpha=d.alpha,
                epochs=d.epochs,
                lr=d.lr,
                timestamp=policy.timestamp,
            )
        if method == "prune":
            return structured_prune(
                model,
                cfg.prune.amount,
                fit_rows,
                fit_rows[target],
                finetune_epochs=cfg.prune.finetune_epochs,
            )
        if method == "magnitude":
            return magnitude_prune(model, cfg.prune.amount)
        if method == "low_rank":
            return low_rank(model, cfg.low_rank.energy)
        if method == "static_quantize":
            return static_quantize(model, calibration_rows(fit_rows, calibration))
        return quantize(model)

    def score(name: str, methods: list[str], model: Any) -> Candidate:
        metric = evaluate(model, valid_rows, target, names)[policy.metric]
        return Candidate(name, methods, float(metric), size_bytes(model), {}, model)

    torch_baseline = isinstance(baseline, TorchMLP)
    if not torch_baseline and "distill" not in cfg.methods:
        raise OptimizeError(
            f"compress: model {policy.model!r} is not a torch model; only `distill` applies"
        )
    candidates = [score(BASELINE, [], baseline)]
    built: dict[tuple[str, ...], Any] = {(): baseline}
    for chain in sequences(cfg.methods, torch_baseline):
        try:
            built[chain] = apply(chain[-1], built[chain[:-1]])
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
    )
    return Plan(candidates, selection, cfg.batch_size)
