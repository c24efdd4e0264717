"""What the compression methods share: copying a model around a new network, and training one.

Every method takes a fitted ``TorchMLP`` and returns a new one (the input is never changed) whose
preprocessing is the same and whose network is the compressed one, described by ``arch``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from reoptd.errors import OptimizeError
from reoptd.models.torch import TorchMLP, describe, hidden_widths, torch_threads


def float_copy(model: TorchMLP) -> nn.Sequential:
    """A copy of the model's float network without Dropout layers (identities at inference)."""
    if model.net is None:
        raise OptimizeError("compress: the torch model is not fitted")
    if model.arch is not None and model.arch.get("quantized"):
        raise OptimizeError("compress: a quantized network cannot be compressed further")
    modules = [copy.deepcopy(m) for m in model.net if not isinstance(m, nn.Dropout)]
    return nn.Sequential(*modules).eval()


def with_network(
    model: TorchMLP, net: nn.Sequential, method: str, arch: dict[str, Any] | None = None
) -> TorchMLP:
    """A copy of ``model`` (same preprocessing and classes) running ``net``, described by
    ``arch`` (default: ``describe(net)``, for float networks)."""
    out = copy.copy(model)
    out.arch = describe(net) if arch is None else arch
    out.net = net.eval()
    out.compression = [*model.compression, method]
    out._params = {**model._params, "hidden": hidden_widths(out.arch), "dropout": 0.0}
    return out


def targets(model: TorchMLP, target: pd.Series) -> torch.Tensor:
    """``target`` in the network's output space: class indices, or the standardized value."""
    values = np.asarray(target)
    if model.task == "classification":
        assert model.classes is not None
        index = {c: i for i, c in enumerate(model.classes)}
        try:
            codes = np.array([index[v] for v in values.tolist()], dtype=np.int64)
        except KeyError as exc:
            raise OptimizeError(
                f"compress: class {exc.args[0]!r} was not seen when the model was trained"
            ) from None
        return torch.from_numpy(codes)
    standard = (values.astype(np.float64) - model.y_mean) / model.y_scale
    return torch.from_numpy(standard.astype(np.float32))


def train_network(
    net: nn.Sequential,
    x: torch.Tensor,
    y: torch.Tensor,
    task: str,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 256,
    seed: int = 0,
    soft: torch.Tensor | None = None,
    temperature: float = 1.0,
    alpha: float = 0.0,
    patience: int = 5,
) -> dict[str, Any]:
    """Train ``net`` in place (AdamW, shuffled mini-batches) and keep its best epoch.

    With ``soft`` (teacher log-probabilities for classification, teacher outputs in the
    standardized space for regression) the loss is ``alpha`` x the distillation loss plus
    ``1 - alpha`` x the loss on the true labels. The newest 10% of the rows stop it early.
    """
    n = len(x)
    n_valid = round(n * 0.1) if n >= 200 else 0
    order_train = slice(0, n - n_valid)
    valid = slice(n - n_valid, n)

    def loss_of(out: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
        if task == "classification":
            hard = F.cross_entropy(out, y[rows])
            if soft is None or alpha == 0:
                return hard
            teacher = F.log_softmax(soft[rows] / temperature, dim=1)
            student = F.log_softmax(out / temperature, dim=1)
            kd = F.kl_div(student, teacher, log_target=True, reduction="batchmean")
            return alpha * kd * temperature**2 + (1 - alpha) * hard
        out = out.squeeze(1)
        hard = F.mse_loss(out, y[rows])
        if soft is None or alpha == 0:
            return hard
        return alpha * F.mse_loss(out, soft[rows]) + (1 - alpha) * hard

    best, best_state, stale, ran = math.inf, None, 0, 0
    with torch.random.fork_rng(devices=[]), torch_threads(1):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr)
        x_train = x[order_train]
        for _ in range(epochs):
            ran += 1
            net.train()
            order = torch.randperm(len(x_train), generator=generator)
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                loss = loss_of(net(x_train[batch]), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            net.eval()
            if not n_valid:
                continue
            with torch.inference_mode():
                valid_loss = float(loss_of(net(x[valid]), valid))
            if valid_loss < best - 1e-7:
                best, stale = valid_loss, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
                if stale >= patience:
                    break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return {"epochs": ran}
