"""A compressed network as plain data: what ``TorchMLP.to_bytes`` stores beside the state dict.

``describe`` turns a float ``nn.Sequential`` of Linear / low-rank / ReLU layers into a dict of
lists and numbers; ``rebuild`` makes the same module again (quantized when the description says
so) so that ``load_state_dict`` can fill it. Nothing in an artifact is unpickled code: the archive
is read with ``weights_only=True``.

Layer kinds: ``{"kind": "linear", "in": 40, "out": 64, "bias": true}``, ``{"kind": "relu"}``
and ``{"kind": "low_rank", "in": 512, "rank": 24, "out": 512}`` (two Linear layers: in -> rank
without bias, rank -> out with bias).
"""

from __future__ import annotations

from typing import Any, TypeGuard

from torch import nn

from reoptd.errors import ArtifactError


def low_rank_module(inputs: int, rank: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, rank, bias=False), nn.Linear(rank, outputs))


def is_low_rank(module: nn.Module) -> TypeGuard[nn.Sequential]:
    return (
        isinstance(module, nn.Sequential)
        and len(module) == 2
        and all(isinstance(m, nn.Linear) for m in module)
    )


def describe(net: nn.Sequential, quantized: str | None = None) -> dict[str, Any]:
    """The plain description of a float network (Dropout layers must be gone already)."""
    layers: list[dict[str, Any]] = []
    for module in net:
        if isinstance(module, nn.Linear):
            layers.append(
                {
                    "kind": "linear",
                    "in": module.in_features,
                    "out": module.out_features,
                    "bias": module.bias is not None,
                }
            )
        elif is_low_rank(module):
            first, second = module[0], module[1]
            layers.append(
                {
                    "kind": "low_rank",
                    "in": first.in_features,
                    "rank": first.out_features,
                    "out": second.out_features,
                }
            )
        elif isinstance(module, nn.ReLU):
            layers.append({"kind": "relu"})
        else:
            raise TypeError(f"cannot describe a {type(module).__name__} layer")
    widths = [layer for layer in layers if layer["kind"] != "relu"]
    return {
        "layers": layers,
        "inputs": widths[0]["in"],
        "outputs": widths[-1]["out"],
        "quantized": quantized,
    }


def float_network(arch: dict[str, Any]) -> nn.Sequential:
    modules: list[nn.Module] = []
    for layer in arch["layers"]:
        kind = layer["kind"]
        if kind == "linear":
            modules.append(nn.Linear(layer["in"], layer["out"], bias=layer["bias"]))
        elif kind == "low_rank":
            modules.append(low_rank_module(layer["in"], layer["rank"], layer["out"]))
        elif kind == "relu":
            modules.append(nn.ReLU())
        else:
            raise ArtifactError(f"unknown layer kind {kind!r} in a compressed torch model")
    return nn.Sequential(*modules)


def rebuild(arch: dict[str, Any]) -> nn.Sequential:
    """An empty module of ``arch``, ready for ``load_state`` (a quantized one with the backend
    that quantized it: ``torch.ao`` when the description predates ``backend``)."""
    net = float_network(arch)
    if arch.get("quantized"):
        from reoptd.models.torch._quantized import quantizer

        backend = arch.get("backend", "torch.ao")
        net = quantizer(arch["quantized"], backend).prepare_for_load(net)
    return net.eval()


def load_state(net: nn.Module, arch: dict[str, Any] | None, state: dict[str, Any]) -> None:
    """Load a saved state dict into ``net`` (from ``rebuild``). torchao's int8 weights are
    tensor subclasses that cannot be copied into the placeholders: they replace them."""
    torchao = arch is not None and bool(arch.get("quantized")) and arch.get("backend") == "torchao"
    net.load_state_dict(state, assign=torchao)


def hidden_widths(arch: dict[str, Any]) -> list[int]:
    """Widths of the hidden layers (what ``params["hidden"]`` says of a plain MLP)."""
    widths = [layer["out"] for layer in arch["layers"] if layer["kind"] != "relu"]
    return widths[:-1]
