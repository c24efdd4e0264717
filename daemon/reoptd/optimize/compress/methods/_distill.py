"""Knowledge distillation: a smaller torch MLP (the student) learns from the model (the teacher).

The teacher is any fitted model (sklearn or torch). For classification the student learns the
teacher's class probabilities softened by ``temperature`` (Hinton et al.'s loss, scaled by T^2)
mixed with cross-entropy on the true labels; for regression the teacher's predictions mixed with
the true targets. The student is a plain ``TorchMLP`` with its own preprocessing fitted on the
same rows, so the other methods (prune, low_rank, quantize) apply to it unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from reoptd.errors import OptimizeError
from reoptd.models.torch import TorchMLP, network
from reoptd.optimize.compress.methods._common import targets, train_network


def teacher_classes(teacher: Any) -> list[Any]:
    if isinstance(teacher, TorchMLP):
        assert teacher.classes is not None
        return list(teacher.classes)
    return np.asarray(teacher.pipeline.classes_).tolist()  # plain values: weights_only loads


def teacher_log_probs(teacher: Any, frame: pd.DataFrame) -> torch.Tensor:
    """Log-probabilities over ``teacher_classes`` for each row."""
    if isinstance(teacher, TorchMLP):
        return torch.log_softmax(teacher._outputs(frame).float(), dim=1)
    try:
        proba = teacher.pipeline.predict_proba(frame[teacher.features])
    except AttributeError:
        raise OptimizeError(
            "compress: distill needs class probabilities; the teacher estimator has no"
            " predict_proba"
        ) from None
    return torch.log(torch.from_numpy(np.clip(proba, 1e-7, 1.0)).float())


def distill(
    teacher: Any,
    frame: pd.DataFrame,
    target: pd.Series,
    *,
    hidden: list[int],
    temperature: float,
    alpha: float,
    epochs: int,
    lr: float,
    timestamp: str | None = None,
    seed: int = 0,
) -> TorchMLP:
    """A student MLP with ``hidden`` layer widths trained on ``frame`` from ``teacher``."""
    numerical = list(getattr(teacher, "numerical", []))
    categorical = list(getattr(teacher, "categorical", []))
    if not isinstance(teacher, TorchMLP):  # sklearn: read the column roles off its transformer
        prep = teacher.pipeline.named_steps["prep"]
        for name, _, columns in prep.transformers:
            (numerical if name == "num" else categorical).extend(columns)
    params = {
        "hidden": list(hidden),
        "dropout": 0.0,
        "lr": lr,
        "epochs": epochs,
        "batch_size": 256,
        "seed": seed,
    }
    student = TorchMLP(numerical, categorical, teacher.task, params, timestamp=timestamp)
    rows = frame[student.features]
    student._fit_preprocessing(rows)
    x = student._matrix(rows)
    if teacher.task == "classification":
        student.classes = teacher_classes(teacher)
        soft = teacher_log_probs(teacher, frame)
        outputs = len(student.classes)
    else:
        values = np.asarray(target, dtype=np.float64)
        student.y_mean = float(values.mean())
        std = float(values.std())
        student.y_scale = std if np.isfinite(std) and std > 0 else 1.0
        taught = (np.asarray(teacher.predict(frame), dtype=np.float64) - student.y_mean) / (
            student.y_scale
        )
        soft = torch.from_numpy(taught.astype(np.float32))
        outputs = 1
    y = targets(student, target)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student.net = network(x.shape[1], list(hidden), 0.0, outputs)
    run = train_network(
        student.net,
        x,
        y,
        teacher.task,
        epochs=epochs,
        lr=lr,
        seed=seed,
        soft=soft,
        temperature=temperature,
        alpha=alpha,
    )
    student.epochs_run = student.best_epoch = run["epochs"]
    student.compression = ["distill"]
    return student
