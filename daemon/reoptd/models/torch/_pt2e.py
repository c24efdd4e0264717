"""Static int8 by torchao's PT2E flow, kept as a plain module an artifact can rebuild.

torchao quantizes: the float network is captured with ``torch.export`` (the batch dimension
dynamic), ``prepare_pt2e`` with the x86 quantizer (``X86InductorQuantizer``, static: uint8
activations per tensor, int8 weights per output channel) inserts observers, the calibration rows
pass through, and ``convert_pt2e`` folds the weights to int8 and fixes every activation's scale
and zero point. What it returns is a reference graph of quantize/dequantize ops around float
``linear`` calls, meant to be lowered by ``torch.compile``: run as it is, it is several times
slower than the float network, its state dict still carries the float weights beside the int8
ones, and only ``torch.export.save``/``load`` (which may unpickle) would bring it back.

So the converted graph is read once (``from_converted``) and each Linear becomes an
``Int8Linear`` holding the graph's own numbers as buffers: the int8 weight, its per-channel
scales and zero points, the float bias and the input's calibrated (scale, zero point, range).
Its reference arithmetic is exactly the graph's (checked on the calibration rows when it is
made); where torch has oneDNN's x86 int8 kernels it runs on them instead (the input quantized to
uint8, ``onednn.qlinear_pointwise`` with the weight prepacked on first use: what torchao's
``lower_pt2e_quantized_to_x86`` and inductor lower the graph to), whose int32 sums round a little
differently. The state dict holds only the int8 weights and these numbers, so the artifact is
small and loads with ``weights_only=True`` into ``rebuild``'s placeholders, without torchao and
without calibration. While ``torch.export`` traces it (the ONNX export), it uses the
``quantized_decomposed`` ops that the PT2E graph uses, which the exporter turns into ONNX
QuantizeLinear / DequantizeLinear nodes around the Gemm: ONNX Runtime runs that form with its own
int8 kernels.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from reoptd.errors import OptimizeError

#: the largest output difference between ``Int8Linear`` layers and the converted PT2E graph
#: on the calibration rows (relative to 1 + |output|); the same arithmetic, so ~float epsilon
MATCH_TOLERANCE = 1e-4


class Int8Linear(nn.Module):
    """A Linear layer of a PT2E static-int8 network: the input quantized with its calibrated
    scale, the int8 weight with its per-channel scales, the bias float, the output float.

    Two ways to compute it: ``reference`` (the PT2E graph's arithmetic: the input fake-quantized,
    ``linear`` with the dequantized weight, in float) and, where torch has oneDNN's x86 int8
    kernels, ``onednn``: the input quantized to uint8 and ``onednn.qlinear_pointwise`` on the
    weight prepacked once (the kernel torchao's x86 lowering and inductor use), int32 sums."""

    weight: torch.Tensor
    weight_scale: torch.Tensor
    weight_zero_point: torch.Tensor
    bias: torch.Tensor | None
    input_qparams: torch.Tensor

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("weight_zero_point", torch.zeros(out_features, dtype=torch.int8))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        # the input's (scale, zero point, quant_min, quant_max); quant_min < 0 means int8
        self.register_buffer("input_qparams", torch.tensor([1.0, 0.0, 0.0, 255.0]).double())
        self.reference = False  # True: always the reference arithmetic
        self._refresh()

    def _refresh(self) -> None:
        scale, zero, low, high = self.input_qparams.tolist()
        self._input = (float(scale), int(zero), int(low), int(high))
        self._zeros = self.weight_zero_point.to(torch.int64)
        self._dequantized = (self.weight.float() - self._zeros[:, None]) * self.weight_scale[
            :, None
        ]
        self._packed: torch.Tensor | None = None  # oneDNN's prepacked weight, made on first use

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_packed": None}  # an opaque oneDNN tensor is not copied

    @property
    def kernel(self) -> str:
        """``onednn`` or ``reference``: how ``forward`` computes outside ``torch.export``."""
        return "onednn" if not self.reference and self._input[2] >= 0 and onednn() else "reference"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero, low, high = self._input
        if torch.compiler.is_exporting():  # the ops the PT2E graph uses: ONNX Q/DQ nodes
            qd = decomposed_ops()
            kind = torch.int8 if low < 0 else torch.uint8
            q = qd.quantize_per_tensor(x, scale, zero, low, high, kind)
            x = qd.dequantize_per_tensor(q, scale, zero, low, high, kind)
            weight = qd.dequantize_per_channel(
                self.weight, self.weight_scale, self._zeros, 0, -128, 127, torch.int8
            )
            return F.linear(x, weight, self.bias)
        if self.kernel == "reference":
            x = torch.fake_quantize_per_tensor_affine(x, scale, zero, low, high)
            return F.linear(x, self._dequantized, self.bias)
        packed = self._packed
        if packed is None:
            packed = self._packed = torch.ops.onednn.qlinear_prepack(self.weight, None)
        q = torch.clamp(torch.round(x * (1.0 / scale)) + zero, low, high).to(torch.uint8)
        return torch.ops.onednn.qlinear_pointwise(
            q, scale, zero, packed, self.weight_scale, self._zeros, self.bias,
            1.0, 0, torch.float32, "none", [], "",
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


@functools.cache
def onednn() -> bool:
    """Whether this torch has oneDNN's x86 int8 linear kernel (and it runs here)."""
    try:
        packed = torch.ops.onednn.qlinear_prepack(torch.ones(2, 2, dtype=torch.int8), None)
        q = torch.zeros(1, 2, dtype=torch.uint8)
        scales, zeros = torch.ones(2), torch.zeros(2, dtype=torch.int64)
        torch.ops.onednn.qlinear_pointwise(
            q, 1.0, 0, packed, scales, zeros, None, 1.0, 0, torch.float32, "none", [], ""
        )
    except (AttributeError, RuntimeError):
        return False
    return True


@contextmanager
def reference_arithmetic(net: nn.Module) -> Iterator[None]:
    """Run ``net``'s ``Int8Linear`` layers with the reference arithmetic meanwhile."""
    layers = [m for m in net.modules() if isinstance(m, Int8Linear)]
    before = [m.reference for m in layers]
    for m in layers:
        m.reference = True
    try:
        yield
    finally:
        for m, was in zip(layers, before, strict=True):
            m.reference = was


def decomposed_ops() -> Any:
    """``torch.ops.quantized_decomposed``, its ops registered (torchao's PT2E module registers
    them on import: a process that only loaded an artifact may not have them yet)."""
    if not hasattr(torch.ops.quantized_decomposed, "quantize_per_tensor"):
        from reoptd.models.torch._quantized import torchao_pt2e

        torchao_pt2e()
    return torch.ops.quantized_decomposed


def placeholders(net: nn.Sequential) -> nn.Sequential:
    """``net`` with each Linear (also inside a low-rank pair) replaced by an empty
    ``Int8Linear`` of its shape: what a saved state dict loads into."""
    for parent in [net, *(m for m in net if isinstance(m, nn.Sequential))]:
        for i, module in enumerate(parent):
            if isinstance(module, nn.Linear):
                parent[i] = Int8Linear(
                    module.in_features, module.out_features, module.bias is not None
                )
    return net.eval()


def quantize(net: nn.Sequential, calibration: torch.Tensor) -> nn.Sequential:
    """A static-int8 copy of the float ``net`` by torchao's PT2E flow, calibrated on
    ``calibration`` (preprocessed input rows); raises ``OptimizeError`` saying why not."""
    from reoptd.models.torch._quantized import torchao_pt2e

    pt2e, x86 = torchao_pt2e()
    prepare_pt2e, convert_pt2e = pt2e.prepare_pt2e, pt2e.convert_pt2e
    float_net = copy.deepcopy(net).eval()
    example = calibration[:2] if len(calibration) >= 2 else calibration.repeat(2, 1)
    try:
        program = torch.export.export(
            float_net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
        quantizer = x86.X86InductorQuantizer()
        quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(program.module(), quantizer)
        with torch.no_grad():
            prepared(calibration)
        converted = convert_pt2e(prepared)
    except Exception as exc:  # export and the quantizer raise many kinds
        raise OptimizeError(f"torchao PT2E could not quantize the network: {exc}") from None
    out = from_converted(float_net, converted)
    with torch.no_grad(), reference_arithmetic(out):
        expected, got = converted(calibration), out(calibration)
    difference = float(((got - expected).abs() / (1 + expected.abs())).max())
    if not difference <= MATCH_TOLERANCE:
        raise OptimizeError(
            f"torchao PT2E: the int8 layers differ from the converted graph by {difference:.3g}"
        )
    return out


def from_converted(float_net: nn.Sequential, converted: torch.fx.GraphModule) -> nn.Sequential:
    """``float_net``'s layout with each Linear replaced by the ``Int8Linear`` of the converted
    PT2E graph's ``linear`` call that took its place (calls and layers in execution order)."""
    qd = decomposed_ops()
    tensors = dict(converted.named_parameters()) | dict(converted.named_buffers())

    def attribute(node: Any) -> torch.Tensor:
        if getattr(node, "op", None) != "get_attr":
            raise OptimizeError(f"torchao PT2E: expected a constant, found {node}")
        target = str(node.target)
        value = tensors[target] if target in tensors else getattr(converted, target)
        return value.detach()

    calls = [
        n
        for n in converted.graph.nodes
        if n.op == "call_function" and n.target == torch.ops.aten.linear.default
    ]
    out = placeholders(copy.deepcopy(float_net))
    layers = [m for m in out.modules() if isinstance(m, Int8Linear)]
    if len(calls) != len(layers):
        raise OptimizeError(
            f"torchao PT2E: {len(calls)} linear calls in the graph for {len(layers)} Linear layers"
        )
    for layer, call in zip(layers, calls, strict=True):
        source, weight = call.args[0], call.args[1]
        bias = call.args[2] if len(call.args) > 2 else None
        if getattr(source, "target", None) != qd.dequantize_per_tensor.default:
            raise OptimizeError(f"torchao PT2E left the input of {call} float")
        if getattr(weight, "target", None) != qd.dequantize_per_channel.default:
            raise OptimizeError(f"torchao PT2E left the weight of {call} float")
        scale, zero, low, high = source.args[1:5]
        int8, weight_scale, weight_zero = (attribute(a) for a in weight.args[:3])
        if tuple(int8.shape) != (layer.out_features, layer.in_features) or (
            (bias is None) != (layer.bias is None)
        ):
            raise OptimizeError(f"torchao PT2E: {call} does not fit {layer}")
        layer.weight = int8.to(torch.int8).clone()
        layer.weight_scale = weight_scale.float().clone()
        layer.weight_zero_point = weight_zero.to(torch.int8).clone()  # in [-128, 127]
        if bias is not None:
            layer.bias = attribute(bias).float().clone()
        qparams = [float(scale), float(zero), float(low), float(high)]
        layer.input_qparams = torch.tensor(qparams, dtype=torch.float64)
        layer._refresh()
    return out.eval()
