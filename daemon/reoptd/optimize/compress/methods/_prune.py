"""Pruning: structured (hidden neurons removed, the Linear layers really shrink) and magnitude.

Structured pruning ranks each hidden neuron by the L2 norm of its incoming weights (with its bias)
times the L2 norm of its outgoing weights, keeps the strongest ``1 - amount`` of each hidden
layer, and rebuilds smaller Linear layers: the neuron's row in its layer and its column in the
next one go. A short fine-tune on the training rows then recovers most of the lost accuracy.

Magnitude pruning (``torch.nn.utils.prune.l1_unstructured``, made permanent) zeroes the smallest
weights of each Linear layer. Dense kernels do not skip zeros, so it makes the model neither
smaller on disk nor faster; it is offered so that this is measured rather than assumed.
"""

from __future__ import annotations

import itertools

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from reoptd.errors import OptimizeError
from reoptd.models.torch import TorchMLP
from reoptd.optimize.compress.methods._common import (
    float_copy,
    targets,
    train_network,
    with_network,
)


def structured_prune(
    model: TorchMLP,
    amount: float,
    frame: pd.DataFrame | None = None,
    target: pd.Series | None = None,
    finetune_epochs: int = 0,
    lr: float = 1e-3,
) -> TorchMLP:
    """``model`` with ``amount`` of each hidden layer's neurons removed (then fine-tuned)."""
    net = float_copy(model)
    positions = [i for i, m in enumerate(net) if isinstance(m, nn.Linear)]
    if len(positions) != sum(not isinstance(m, nn.ReLU) for m in net):
        raise OptimizeError("compress: structured pruning needs a plain MLP (Linear and ReLU)")
    with torch.no_grad():
        for here, after in itertools.pairwise(positions):
            layer, following = net[here], net[after]
            # positions holds the Linear layers only (and each is replaced by a Linear)
            assert isinstance(layer, nn.Linear) and isinstance(following, nn.Linear)
            incoming = layer.weight.norm(dim=1)
            if layer.bias is not None:
                incoming = torch.sqrt(incoming**2 + layer.bias**2)
            importance = incoming * following.weight.norm(dim=0)
            keep_n = max(1, round(layer.out_features * (1 - amount)))
            keep = torch.sort(torch.topk(importance, keep_n).indices).values
            smaller = nn.Linear(layer.in_features, keep_n, bias=layer.bias is not None)
            smaller.weight.copy_(layer.weight[keep])
            if layer.bias is not None:
                smaller.bias.copy_(layer.bias[keep])
            narrower = nn.Linear(keep_n, following.out_features, bias=following.bias is not None)
            narrower.weight.copy_(following.weight[:, keep])
            if following.bias is not None:
                narrower.bias.copy_(following.bias)
            net[here], net[after] = smaller, narrower
    if finetune_epochs > 0 and frame is not None and target is not None:
        x = model._matrix(frame[model.features])
        train_network(
            net, x, targets(model, target), model.task, epochs=finetune_epochs, lr=lr, patience=1
        )
    return with_network(model, net, "prune")


def magnitude_prune(model: TorchMLP, amount: float) -> TorchMLP:
    """``model`` with the ``amount`` smallest-magnitude weights of each Linear layer at zero."""
    net = float_copy(model)
    for module in net.modules():
        if isinstance(module, nn.Linear):
            torch_prune.l1_unstructured(module, "weight", amount=amount)
            torch_prune.remove(module, "weight")  # permanent: a plain weight, zeros included
    return with_network(model, net, "magnitude")
