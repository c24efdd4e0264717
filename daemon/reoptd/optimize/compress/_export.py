"""Export a candidate to the ONNX serving form (``reoptd.models.OnnxModel``) and check it.

A torch MLP's network goes through the dynamo-based ONNX exporter (``torch.onnx.export(...,
dynamo=True)``, onnxscript); an sklearn pipeline's estimator through skl2onnx. The preprocessing
is not part of the graph: it is copied as numbers into the artifact's header (a torch model's
means, scales and categories; an sklearn pipeline's StandardScaler and OneHotEncoder), and runs on
numpy arrays. Only what can be reproduced exactly is exported: a quantized torch network other
than torchao's static int8 (PT2E: its layers export as ONNX QuantizeLinear / DequantizeLinear
nodes around each Gemm, with int8 weights), or an sklearn pipeline other than reoptd's own
StandardScaler / OneHotEncoder preprocessing, raises ``NotExportable`` with the reason.

``max_difference`` compares the ONNX form's outputs with the Python form's on the holdout: class
probabilities for classifiers, predictions relative to ``1 + |prediction|`` for regressors.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from reoptd.errors import OptimizeError
from reoptd.models import OnnxModel, SklearnModel
from reoptd.models.torch import TorchMLP

log = logging.getLogger("reoptd.compress")

ONNX_SUFFIX = "@onnx"
OPSET = 18
_PATCH_LOCK = threading.Lock()


class NotExportable(OptimizeError):
    """This model has no ONNX serving form here; the message says why."""


def export_onnx(model: Any, threads: int = 1) -> OnnxModel:
    """``model`` (a fitted ``TorchMLP`` or ``SklearnModel``) in its ONNX serving form, run by
    ONNX Runtime on ``threads`` threads."""
    if isinstance(model, TorchMLP):
        header, graph = _torch(model)
    elif isinstance(model, SklearnModel):
        header, graph = _sklearn(model)
    else:
        raise NotExportable(f"a {type(model).__name__} has no ONNX export")
    return OnnxModel({"format": 1, **header}, graph, threads)


def python_outputs(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """The Python form's probabilities (classifiers) or predictions (regressors)."""
    if model.task != "classification":
        return np.asarray(model.predict(frame), dtype=np.float64)
    if isinstance(model, TorchMLP):
        import torch

        return torch.softmax(model._outputs(frame).float(), dim=1).double().numpy()
    return np.asarray(model.pipeline.predict_proba(frame[model.features]), dtype=np.float64)


def max_difference(python: Any, onnx: OnnxModel, frame: pd.DataFrame) -> float:
    """The largest difference between the two forms' outputs on the rows of ``frame``."""
    expected = python_outputs(python, frame)
    arrays = onnx.arrays(frame)
    if onnx.task == "classification":
        got = onnx.predict_proba_arrays(*arrays)
        if got.shape != expected.shape:
            return float("inf")
        return float(np.max(np.abs(got - expected), initial=0.0))
    got = onnx.predict_arrays(*arrays)
    return float(np.max(np.abs(got - expected) / (1.0 + np.abs(expected)), initial=0.0))


# -- torch ---------------------------------------------------------------------------------------


def _torch(model: TorchMLP) -> tuple[dict[str, Any], bytes]:
    if model.net is None or model.mean is None or model.scale is None:
        raise NotExportable("the torch MLP is not fitted")
    arch = model.arch or {}
    if arch.get("quantized") and (arch["quantized"], arch.get("backend")) != (
        "static_int8",
        "torchao",
    ):
        raise NotExportable(
            f"a {arch['quantized']} network quantized by {arch.get('backend', 'torch.ao')} has"
            " no ONNX export here (only torchao's static int8 has)"
        )
    header = {
        "task": model.task,
        "numerical": model.numerical,
        "categorical": model.categorical,
        "mean": [float(v) for v in model.mean],
        "scale": [float(v) for v in model.scale],
        "nan_to_zero": True,
        "categories": model.categories,
        "classes": model.classes,
        "y_mean": model.y_mean,
        "y_scale": model.y_scale,
        "output": "logits" if model.task == "classification" else "standardized",
        "source": "torch",
        "compression": list(model.compression),
        "params": model.params,
    }
    return header, _torch_graph(model)


def _torch_graph(model: TorchMLP) -> bytes:
    import torch
    from torch import nn

    assert model.net is not None
    net = nn.Sequential(*[m for m in model.net if not isinstance(m, nn.Dropout)]).eval()
    width = len(model.numerical) + sum(len(c) for c in model.categories)
    example = torch.zeros(2, width)  # not 0 or 1 rows: the exporter would specialize on them
    batch = torch.export.Dim("batch")
    with _quiet():
        try:
            program = torch.onnx.export(
                net,
                (example,),
                dynamo=True,
                input_names=["x"],
                output_names=["out"],
                dynamic_shapes=({0: batch},),
                opset_version=OPSET,
                verbose=False,
            )
        except Exception as exc:  # the exporter raises many kinds
            raise NotExportable(f"torch.onnx.export failed: {exc}") from None
    if program is None:  # pragma: no cover - only without dynamo
        raise NotExportable("torch.onnx.export returned no program")
    return bytes(program.model_proto.SerializeToString())


# -- sklearn -------------------------------------------------------------------------------------


def _sklearn(model: SklearnModel) -> tuple[dict[str, Any], bytes]:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pipeline = model.pipeline
    if not (isinstance(pipeline, Pipeline) and len(pipeline.steps) == 2):
        raise NotExportable("only reoptd's own pipeline (prep, estimator) is exported")
    prep, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(prep, ColumnTransformer):
        raise NotExportable("the pipeline's first step is not a ColumnTransformer")
    numerical: list[str] = []
    categorical: list[str] = []
    mean: list[float] = []
    scale: list[float] = []
    categories: list[list[str]] = []
    for name, step, columns in prep.transformers_:
        if name == "remainder" and step == "drop":
            continue
        if isinstance(step, StandardScaler) and not categorical:  # the graph: numerical first
            numerical.extend(columns)
            n = len(columns)
            mean.extend(np.zeros(n) if step.mean_ is None else np.asarray(step.mean_).tolist())
            scale.extend(np.ones(n) if step.scale_ is None else np.asarray(step.scale_).tolist())
        elif isinstance(step, OneHotEncoder) and step.handle_unknown == "ignore":
            if step.drop_idx_ is not None:
                raise NotExportable("a OneHotEncoder that drops a category")
            categorical.extend(columns)
            categories.extend([str(c) for c in cats] for cats in step.categories_)
        else:
            raise NotExportable(
                f"the preprocessing step {name!r} ({type(step).__name__}): only StandardScaler"
                " then OneHotEncoder(handle_unknown='ignore') are reproduced on numpy arrays"
            )
    classifier = model.task == "classification"
    header = {
        "task": model.task,
        "numerical": numerical,
        "categorical": categorical,
        "mean": [float(v) for v in mean],
        "scale": [float(v) if v else 1.0 for v in scale],
        "nan_to_zero": False,
        "categories": categories,
        "classes": np.asarray(estimator.classes_).tolist() if classifier else None,
        "output": "probabilities" if classifier else "values",
        "source": "sklearn",
        "compression": [],
        "params": model.params,
        "estimator": f"{type(estimator).__module__}.{type(estimator).__name__}",
    }
    return header, _sklearn_graph(estimator, len(numerical) + sum(map(len, categories)))


def _sklearn_graph(estimator: Any, width: int) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    with _quiet(), _tree_attributes_as_ints():
        try:
            onnx_model = convert_sklearn(
                estimator,
                initial_types=[("x", FloatTensorType([None, width]))],
                options=options,
                target_opset={"": OPSET, "ai.onnx.ml": 3},
            )
        except Exception as exc:  # converters raise many kinds
            raise NotExportable(
                f"skl2onnx cannot convert {type(estimator).__name__}: {str(exc)[:300]}"
            ) from None
    return bytes(onnx_model.SerializeToString())


@contextlib.contextmanager
def _tree_attributes_as_ints() -> Iterator[None]:
    """skl2onnx 1.20 passes ``False`` for a leaf's ``nodes_missing_value_tracks_true`` when it
    converts a HistGradientBoosting model, which onnx >= 1.18 rejects (a bool in an ints
    attribute); while converting, its ``add_node`` gets the flag as the int ONNX defines."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    @functools.wraps(original)
    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        flag = int(nodes_missing_value_tracks_true)
        return original(*args, nodes_missing_value_tracks_true=flag, **kwargs)

    with _PATCH_LOCK:  # a module global: one conversion at a time patches it
        tree_ensemble.add_node = add_node
        try:
            yield
        finally:
            tree_ensemble.add_node = original


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters warn and log at length about things that do not matter here."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)
