"""Which serving form an artifact is, read off its first bytes (nothing is loaded)."""

from __future__ import annotations

from reoptd.models.torch import MAGIC as TORCH_MAGIC

#: first bytes of an ONNX serving-form artifact (``reoptd.models._onnx``)
ONNX_MAGIC = b"REOPTD-ONNX\x01\n"

#: the serving forms an artifact can have
FORMS = ("onnx", "torch", "pickle")


def serving_form(data: bytes) -> str:
    """``onnx`` (ONNX Runtime, no code runs on load), ``torch`` (a state dict read with
    ``weights_only``, no code runs) or ``pickle`` (an sklearn model: loading it runs code)."""
    if data.startswith(ONNX_MAGIC):
        return "onnx"
    if data.startswith(TORCH_MAGIC):
        return "torch"
    return "pickle"
