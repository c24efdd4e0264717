"""The sklearn family's declaration: any scikit-learn estimator, named by its import path.

Light on purpose (``reoptd policy validate`` imports it): scikit-learn is imported by the
model itself (``reoptd.models._sklearn``) when a model is built or loaded.
"""

from __future__ import annotations

from typing import Any

from reoptd.plugins import FAMILIES, ModelFamily

__all__ = ["FAMILY"]


def _build(policy: Any, params: dict[str, Any] | None) -> Any:
    from reoptd.models._sklearn import SklearnModel

    return SklearnModel.build(policy, params)


def _load(data: bytes) -> Any:
    from reoptd.models._sklearn import SklearnModel

    return SklearnModel.from_bytes(data)


FAMILY = FAMILIES.register(
    ModelFamily(
        name="sklearn",
        description="any scikit-learn estimator, named by `estimator`",
        build=_build,
        load=_load,
        magic=b"",  # a pickle: every artifact no other family claims
    )
)
