"""The sklearn family's declaration: a scikit-learn estimator, named by its import path.

Light on purpose (``reoptd policy validate`` imports it): scikit-learn is imported by the
model itself (``reoptd.models._sklearn``) when a model is built or loaded, and by ``check``
only for an import path the operator allows.

A policy is data, not code: ``train.estimator`` names a class only from a module under one of
the operator's prefixes (``REOPTD_ALLOWED_ESTIMATOR_MODULES``, default ``sklearn.``), checked
*before* anything is imported, and the class must be a scikit-learn estimator that predicts;
``train.params`` may only name the class's own parameters.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from reoptd.plugins import FAMILIES, ModelFamily
from reoptd.settings import PolicyLimits

__all__ = ["FAMILY", "EstimatorRefused", "resolve_estimator"]


class EstimatorRefused(ValueError):
    """``train.estimator`` names no estimator the operator allows; the message says why."""


def resolve_estimator(path: str) -> type:
    """The estimator class ``path`` names, if the operator's allowlist and scikit-learn allow
    it; ``EstimatorRefused`` otherwise (nothing outside the allowlist is imported)."""
    return _resolve(path, PolicyLimits().estimator_prefixes)


@functools.lru_cache(maxsize=256)
def _resolve(path: str, prefixes: tuple[str, ...]) -> type:
    module_name, _, attr = path.rpartition(".")
    parts = path.split(".")
    if not module_name or not all(p.isidentifier() for p in parts):
        raise EstimatorRefused(
            f"{path!r} is not an import path (module.Class, e.g."
            " sklearn.ensemble.RandomForestClassifier)"
        )
    if not any(path.startswith(prefix) for prefix in prefixes):
        raise EstimatorRefused(
            f"{path!r} is not in a module the operator allows (REOPTD_ALLOWED_ESTIMATOR_MODULES:"
            f" {', '.join(prefixes) or 'none'}); a policy can name estimators, not code"
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise EstimatorRefused(f"cannot import {path!r}") from None
    from sklearn.base import BaseEstimator

    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise EstimatorRefused(f"{path!r} is not a scikit-learn estimator class")
    if not (callable(getattr(cls, "fit", None)) and callable(getattr(cls, "predict", None))):
        raise EstimatorRefused(f"{path!r} does not predict (it has no fit and predict)")
    return cls


def _check(estimator: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    try:
        cls = resolve_estimator(estimator)
    except EstimatorRefused as exc:
        return [("estimator", str(exc))]
    known = _param_names(cls)
    if known is None:
        return []  # the estimator takes any keyword (``**kwargs`` down to its base): it checks
    problems = []
    for name in params:
        if name in known:
            continue
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        hint = f" — did you mean `{close[0]}`?" if close else f"; choose from {', '.join(known)}"
        problems.append((f"params.{name}", f"{cls.__name__} has no parameter {str(name)!r}{hint}"))
    return problems


def _param_names(cls: type) -> list[str] | None:
    """The parameters ``cls(...)`` takes by name, from the ``__init__`` signatures along its
    MRO while each passes ``**kwargs`` on; None when every one does (any name may be meant)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            break
        params = list(inspect.signature(init).parameters.values())[1:]  # after self
        names.update(p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return sorted(names)
    return None


def _build(policy: Any, params: dict[str, Any] | None) -> Any:
    from reoptd.models._sklearn import SklearnModel

    return SklearnModel.build(policy, params)


def _load(data: bytes) -> Any:
    from reoptd.models._sklearn import SklearnModel

    return SklearnModel.from_bytes(data)


FAMILY = FAMILIES.register(
    ModelFamily(
        name="sklearn",
        description="a scikit-learn estimator, named by `estimator`, from the modules the"
        " operator allows (REOPTD_ALLOWED_ESTIMATOR_MODULES, default sklearn.)",
        build=_build,
        load=_load,
        magic=b"",  # a pickle: every artifact no other family claims
        check=_check,
    )
)
