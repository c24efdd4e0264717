"""Model families behind one interface (``fit``, ``predict``, ``predict_score``, ``to_bytes``).

Families are plugins (``reoptd.plugins.FAMILIES``): ``build_model`` picks the one the policy
names (``train.family``); ``load_model`` recognizes an artifact's family by its first bytes.
Each family imports its library (scikit-learn, torch) on first use only, so commands that never
touch a torch model do not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from reoptd import lazy
from reoptd.errors import ArtifactError
from reoptd.models._forms import FORMS, ONNX_MAGIC, serving_form
from reoptd.models.torch import MAGIC as TORCH_MAGIC
from reoptd.plugins import FAMILIES

if TYPE_CHECKING:
    from reoptd.models._onnx import OnnxModel
    from reoptd.models._sklearn import SklearnModel, import_estimator
    from reoptd.models.torch import TorchMLP
    from reoptd.policy import Policy

    Model: TypeAlias = SklearnModel | TorchMLP | OnnxModel
else:
    Model: TypeAlias = Any

__all__ = [
    "FORMS",
    "ONNX_MAGIC",
    "TORCH_MAGIC",
    "Model",
    "OnnxModel",
    "SklearnModel",
    "build_model",
    "import_estimator",
    "load_model",
    "serving_form",
]

__getattr__, __dir__ = lazy.lazy_exports(
    __name__,
    {"OnnxModel": "._onnx", "SklearnModel": "._sklearn", "import_estimator": "._sklearn"},
)


def build_model(policy: Policy, params: dict[str, Any] | None = None) -> Model:
    """An unfitted model of the policy's family, with ``params`` (default: ``train.params``)."""
    return FAMILIES.get(policy.train.family).build(policy, params)


def load_model(data: bytes, allow_pickle: bool = True) -> Model:
    """Rebuild a model from its artifact bytes (sha256 already verified by the store).

    An ONNX serving form loads without running code; ``allow_pickle=False`` refuses an artifact
    that is a pickle (an sklearn model in its Python form) before anything is unpickled."""
    if data.startswith(ONNX_MAGIC):
        from reoptd.models._onnx import OnnxModel

        return OnnxModel.from_bytes(data)
    if not allow_pickle and serving_form(data) == "pickle":
        raise ArtifactError(
            "model artifact is a pickle (an sklearn model in its Python form) and pickles are"
            " refused: loading one runs code; serve its ONNX form (compress.serving: onnx)"
        )
    families = FAMILIES.plugins()
    for family in families:
        if family.magic and data.startswith(family.magic):
            return family.load(data)
    for family in families:
        if not family.magic:
            return family.load(data)
    raise ArtifactError("model artifact belongs to no known model family")
