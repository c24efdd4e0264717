"""Model families behind one interface (``fit``, ``predict``, ``predict_score``, ``to_bytes``).

``build_model`` picks the family the policy names (``train.family``); ``load_model`` recognizes
an artifact's family by its first bytes. The torch family is imported on first use only, so
commands that never touch a torch model do not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from reoptd.models._sklearn import SklearnModel, import_estimator

if TYPE_CHECKING:
    from reoptd.models._torch import TorchMLP
    from reoptd.policy import Policy

    Model: TypeAlias = SklearnModel | TorchMLP
else:
    Model: TypeAlias = Any

__all__ = ["Model", "SklearnModel", "build_model", "import_estimator", "load_model"]

#: first bytes of a torch-family artifact (sklearn artifacts are pickles, starting with 0x80)
TORCH_MAGIC = b"REOPTD-TORCH-MLP\x01\n"


def build_model(policy: Policy, params: dict[str, Any] | None = None) -> Model:
    """An unfitted model of the policy's family, with ``params`` (default: ``train.params``)."""
    if policy.train.family == "torch":
        from reoptd.models._torch import TorchMLP

        return TorchMLP.build(policy, params)
    return SklearnModel.build(policy, params)


def load_model(data: bytes) -> Model:
    """Rebuild a model from its artifact bytes (sha256 already verified by the store)."""
    if data.startswith(TORCH_MAGIC):
        from reoptd.models._torch import TorchMLP

        return TorchMLP.from_bytes(data)
    return SklearnModel.from_bytes(data)
