"""Low-rank factorization: each Linear layer W (out x in) becomes two, in -> r -> out.

The truncated SVD W ~ U_r S_r V_r^T keeps the smallest rank r whose singular values retain
``energy`` of the sum of squared singular values (W's squared Frobenius norm). The first factor
is sqrt(S_r) V_r^T (no bias), the second U_r sqrt(S_r) with the layer's bias. A layer is replaced
only when r (in + out) < in x out, i.e. when the two factors hold fewer weights than W.
"""

from __future__ import annotations

import torch
from torch import nn

from reoptd.models.torch import TorchMLP, low_rank_module
from reoptd.optimize.compress.methods._common import float_copy, with_network


def rank_for(singular: torch.Tensor, energy: float) -> int:
    """The smallest rank whose singular values retain ``energy`` of the squared total."""
    squared = singular.double() ** 2
    share = torch.cumsum(squared, 0) / squared.sum().clamp_min(1e-30)
    return int(torch.searchsorted(share, torch.tensor(energy, dtype=share.dtype)).item()) + 1


def factorize(layer: nn.Linear, energy: float) -> nn.Module:
    """``layer`` as two low-rank Linear layers, or ``layer`` itself when that is not smaller."""
    with torch.no_grad():
        u, s, vh = torch.linalg.svd(layer.weight.double(), full_matrices=False)
        rank = min(rank_for(s, energy), len(s))
        n_in, n_out = layer.in_features, layer.out_features
        if rank * (n_in + n_out) >= n_in * n_out:
            return layer
        root = torch.sqrt(s[:rank])
        module = low_rank_module(layer.in_features, rank, layer.out_features)
        first, second = module[0], module[1]  # low_rank_module's two Linear layers
        assert isinstance(first, nn.Linear) and isinstance(second, nn.Linear)
        first.weight.copy_((root[:, None] * vh[:rank]).float())
        second.weight.copy_((u[:, :rank] * root[None, :]).float())
        if layer.bias is not None:
            second.bias.copy_(layer.bias)
        else:
            second.bias.zero_()
        return module


def low_rank(model: TorchMLP, energy: float) -> TorchMLP:
    """``model`` with every Linear layer factorized where that makes it smaller."""
    net = float_copy(model)
    for i, module in enumerate(net):
        if isinstance(module, nn.Linear):
            net[i] = factorize(module, energy)
    return with_network(model, net, "low_rank")
