"""The torch family: a tabular MLP classifier or regressor, trained on the CPU.

The artifact carries its own preprocessing, fitted on the training rows: numerical features are
standardized (a missing value becomes the training mean), categorical ones one-hot encoded, with
categories never seen in training encoded as all zeros. Classes are mapped to output indices and
back, so ``predict`` returns the training labels' own values (0.0/1.0 stay floats).

Training is Adam(W) on cross-entropy (classification) or MSE on the standardized target
(regression), in shuffled mini-batches, with early stopping on the newest 10% of the training
rows: the weights of the epoch with the lowest validation loss are kept. Everything random is
drawn from ``seed`` inside a forked RNG, so the same rows and parameters give the same model and
the process's global torch RNG is left alone.

A warm start (``fit_warm``) fine-tunes a copy of the champion's network instead: the champion's
preprocessing is kept (its means, scales and target scaling), categories it never saw get fresh
one-hot inputs whose first-layer weights start at zero (so the copy first predicts exactly as the
champion), and training runs at a lower learning rate for fewer epochs. ``augmentation`` adds
Gaussian noise to the standardized numerical inputs, or mixup of input pairs, while training.

An artifact is ``MAGIC`` followed by a ``torch.save`` archive of ``{"config": plain dict,
"state": state dict}``; it is read back with ``weights_only=True``, so loading one runs no
pickled code. A compressed network (``reoptd.optimize.compress``) is not the plain MLP of
``params``: its config adds ``arch``, a plain description of its layers (low-rank factors,
quantized layers) from which the module is rebuilt before the state dict is loaded (format 2).
"""

from __future__ import annotations

import copy
import io
import math
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from reoptd.errors import ArtifactError, OptimizeError
from reoptd.models.torch import DEFAULTS, MAGIC
from reoptd.models.torch import PARAMS as TORCH_PARAMS
from reoptd.policy import Policy

FORMAT = 1
ARCH_FORMAT = 2  # the network is described by ``config["arch"]`` (a compressed model)
VALIDATION = 0.1  # newest share of the training rows that drives early stopping
MIN_VALIDATION_ROWS = 10

assert set(DEFAULTS) | {"width", "depth"} == set(TORCH_PARAMS)

#: called after every epoch with (epoch starting at 1, the model with that epoch's weights)
EpochCallback = Callable[[int, "TorchMLP"], None]


def resolve_params(given: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, values checked and typed; raises ``OptimizeError`` naming the key."""
    unknown = sorted(set(given) - set(TORCH_PARAMS))
    if unknown:
        raise OptimizeError(
            f"train.params: the torch MLP has no parameter {', '.join(map(repr, unknown))};"
            f" it takes {', '.join(TORCH_PARAMS)}"
        )
    params = {**DEFAULTS, **{k: v for k, v in given.items() if k in DEFAULTS}}
    hidden = params["hidden"]
    if isinstance(hidden, int | str) and not isinstance(hidden, bool):
        hidden = [hidden]
    if not isinstance(hidden, list | tuple):
        raise OptimizeError(f"train.params.hidden: a list of layer widths, not {hidden!r}")
    hidden = [_number("hidden", h, int, low=1) for h in hidden]
    if "width" in given or "depth" in given:
        width = _number("width", given.get("width", hidden[0] if hidden else 64), int, low=1)
        depth = _number("depth", given.get("depth", len(hidden)), int, low=0)
        hidden = [width] * depth
    params["hidden"] = hidden
    params["dropout"] = _number("dropout", params["dropout"], float, low=0.0)
    if params["dropout"] >= 1:
        raise OptimizeError(f"train.params.dropout: below 1, not {params['dropout']}")
    params["lr"] = _number("lr", params["lr"], float, low=0.0, strict=True)
    params["epochs"] = _number("epochs", params["epochs"], int, low=1)
    params["batch_size"] = _number("batch_size", params["batch_size"], int, low=1)
    params["weight_decay"] = _number("weight_decay", params["weight_decay"], float, low=0.0)
    params["patience"] = _number("patience", params["patience"], int, low=0)
    params["seed"] = _number("seed", params["seed"], int)
    return params


def _number(name: str, value: Any, kind: type, low: float | None = None, strict: bool = False):
    # YAML reads `1e-3` (no dot) as a string: accept numbers written that way too.
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if kind is int:
            if not number.is_integer():
                raise ValueError
            number = int(number)
    except (TypeError, ValueError, OverflowError):
        what = "an integer" if kind is int else "a number"
        raise OptimizeError(f"train.params.{name}: {what}, not {value!r}") from None
    if not math.isfinite(number) or (
        low is not None and (number <= low if strict else number < low)
    ):
        bound = f"above {low:g}" if strict else f"at least {low:g}"
        raise OptimizeError(f"train.params.{name}: {bound}, not {value!r}")
    return number


def network(inputs: int, hidden: list[int], dropout: float, outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


#: Held while a caller changes torch's process-wide settings (intra-op thread count, quantized
#: engine) and runs under them: the daemon's scheduler runs several models' work in worker
#: threads at once, and one thread's ``set_num_threads`` would otherwise change another's.
#: Re-entrant, so nested settings in one thread do not deadlock.
SETTINGS_LOCK = threading.RLock()


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run torch's intra-op kernels on ``threads`` threads, restoring the count afterwards.
    Small MLPs train fastest (and reproducibly) on one thread. Holds ``SETTINGS_LOCK`` for the
    duration: another thread's torch work that changes the settings waits for it."""
    with SETTINGS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)


class TorchMLP:
    """An MLP plus its fitted preprocessing; ``to_bytes`` / ``from_bytes`` round-trip it."""

    family = "torch"

    def __init__(
        self,
        numerical: list[str],
        categorical: list[str],
        task: str,
        params: dict[str, Any],
        timestamp: str | None = None,
    ) -> None:
        self.numerical = list(numerical)
        self.categorical = list(categorical)
        self.task = task
        self._params = resolve_params(params)
        self.timestamp = timestamp
        # fitted state
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.categories: list[list[str]] = []
        self.classes: list[Any] | None = None
        self.y_mean = 0.0
        self.y_scale = 1.0
        self.net: nn.Sequential | None = None
        self.epochs_run = 0
        self.best_epoch = 0
        # set by reoptd.optimize.compress: the network's layer description, and the methods applied
        self.arch: dict[str, Any] | None = None
        self.compression: list[str] = []
        # set before ``fit`` by the augment step: {"noise": std} or {"mixup": alpha}; not saved
        self.augmentation: dict[str, float] = {}

    @classmethod
    def build(cls, policy: Policy, params: dict[str, Any] | None = None) -> TorchMLP:
        params = dict(policy.train.params if params is None else params)
        return cls(
            policy.features.numerical,
            policy.features.categorical,
            policy.task,
            params,
            timestamp=policy.timestamp,
        )

    @property
    def features(self) -> list[str]:
        return [*self.numerical, *self.categorical]

    @property
    def params(self) -> dict[str, Any]:
        """The parameters in force; ``width``/``depth`` too when all layers are equally wide."""
        params = {**self._params, "hidden": list(self._params["hidden"])}
        hidden = params["hidden"]
        if hidden and len(set(hidden)) == 1:
            params["width"], params["depth"] = hidden[0], len(hidden)
        return params

    # -- preprocessing --------------------------------------------------------------------------

    def _fit_preprocessing(self, frame: pd.DataFrame) -> None:
        if self.numerical:
            values = frame[self.numerical].to_numpy(dtype=np.float64)
            with np.errstate(all="ignore"):
                mean = np.nanmean(values, axis=0) if len(values) else np.zeros(values.shape[1])
                scale = np.nanstd(values, axis=0) if len(values) else np.ones(values.shape[1])
            self.mean = np.nan_to_num(mean, nan=0.0)
            self.scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        else:
            self.mean, self.scale = np.zeros(0), np.ones(0)
        self.categories = [
            sorted(frame[column].astype(str).unique().tolist()) for column in self.categorical
        ]

    def _matrix(self, frame: pd.DataFrame) -> torch.Tensor:
        assert self.mean is not None and self.scale is not None
        parts: list[np.ndarray] = []
        if self.numerical:
            values = frame[self.numerical].to_numpy(dtype=np.float64)
            standard = (values - self.mean) / self.scale
            parts.append(np.nan_to_num(standard, nan=0.0, posinf=0.0, neginf=0.0))
        for column, categories in zip(self.categorical, self.categories, strict=True):
            codes = pd.Categorical(frame[column].astype(str), categories=categories).codes
            onehot = np.zeros((len(frame), len(categories)))
            known = codes >= 0  # unseen categories stay all zeros
            onehot[np.flatnonzero(known), codes[known]] = 1.0
            parts.append(onehot)
        matrix = np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0))
        return torch.from_numpy(matrix.astype(np.float32))

    # -- training -------------------------------------------------------------------------------

    def fit(
        self, frame: pd.DataFrame, target: pd.Series, on_epoch: EpochCallback | None = None
    ) -> TorchMLP:
        """Train on ``frame`` (rows oldest first, or sorted here by the timestamp column).

        ``on_epoch(epoch, model)`` runs after each epoch with that epoch's weights loaded and the
        network in eval mode; whatever it raises (``optuna.TrialPruned``) ends the training.
        """
        frame, target = self._ordered(frame, target)
        try:
            self._fit_preprocessing(frame)
            x = self._matrix(frame)
        except (ValueError, TypeError) as exc:
            raise OptimizeError(f"training failed: {exc}") from None
        if self.task == "classification":
            try:
                classes, codes = np.unique(target.to_numpy(), return_inverse=True)
            except TypeError as exc:  # labels of mixed types cannot be ordered
                raise OptimizeError(f"training failed: classification target: {exc}") from None
            self.classes = classes.tolist()
            y = torch.from_numpy(codes.astype(np.int64))
        else:
            values = self._regression_values(target)
            self.classes = None
            self.y_mean = float(values.mean())
            std = float(values.std())
            self.y_scale = std if math.isfinite(std) and std > 0 else 1.0
            y = torch.from_numpy(((values - self.y_mean) / self.y_scale).astype(np.float32))
        with torch.random.fork_rng(devices=[]), torch_threads(1):
            torch.manual_seed(self._params["seed"])
            self._train(x, y, self._loss(), on_epoch)
        return self

    def warm_problem(self, start: Any) -> str:
        """Why this model cannot be fine-tuned from ``start`` (empty: it can)."""
        if not isinstance(start, TorchMLP):
            kind = getattr(start, "family", type(start).__name__)
            return f"the champion is a {kind} model, not a torch MLP"
        if start.net is None or start.mean is None or start.scale is None:
            return "the champion is not fitted"
        if start.task != self.task:
            return f"the champion is a {start.task} model"
        if (start.numerical, start.categorical) != (self.numerical, self.categorical):
            return f"the champion reads other features ({', '.join(start.features)})"
        if start.arch is not None and start.arch.get("quantized"):
            return (
                f"the champion is int8-quantized ({'+'.join(start.compression) or 'quantized'}):"
                " it has no float weights to fine-tune"
            )
        return ""

    def fit_warm(
        self,
        frame: pd.DataFrame,
        target: pd.Series,
        start: TorchMLP,
        *,
        lr_factor: float,
        budget: float,
        on_epoch: EpochCallback | None = None,
    ) -> TorchMLP:
        """Fine-tune a copy of ``start`` (the champion) on ``frame``: its preprocessing and
        layers, new categories as fresh zero-weight inputs, at ``lr_factor`` x ``lr`` for at most
        ``budget`` x ``epochs`` epochs. Raises ``OptimizeError`` if ``warm_problem`` says why
        it cannot (or the rows hold a class the champion never saw)."""
        problem = self.warm_problem(start)
        if problem:
            raise OptimizeError(f"warm start: {problem}")
        assert start.net is not None and start.mean is not None and start.scale is not None
        frame, target = self._ordered(frame, target)
        p = self._params
        self._params = {
            **p,
            "hidden": list(start._params["hidden"]),
            "dropout": start._params["dropout"],
            "lr": p["lr"] * lr_factor,
            "epochs": max(1, math.ceil(p["epochs"] * budget)),
        }
        self.arch = copy.deepcopy(start.arch)
        self.compression = list(start.compression)
        self.mean, self.scale = start.mean.copy(), start.scale.copy()
        self.categories, added = [], []
        try:
            for column, known in zip(self.categorical, start.categories, strict=True):
                new = sorted(set(frame[column].astype(str).unique()) - set(known))
                self.categories.append([*known, *new])
                added.append(len(new))
            x = self._matrix(frame)
        except (ValueError, TypeError) as exc:
            raise OptimizeError(f"training failed: {exc}") from None
        if self.task == "classification":
            assert start.classes is not None
            self.classes = list(start.classes)
            index = {label: i for i, label in enumerate(self.classes)}
            labels = target.to_numpy()
            unseen = sorted({str(v) for v in labels if v not in index})
            if unseen:
                raise OptimizeError(f"warm start: class {', '.join(unseen)} the champion never saw")
            y = torch.from_numpy(np.array([index[v] for v in labels], dtype=np.int64))
        else:
            self.y_mean, self.y_scale = start.y_mean, start.y_scale
            values = self._regression_values(target)
            y = torch.from_numpy(((values - self.y_mean) / self.y_scale).astype(np.float32))
        net = copy.deepcopy(start.net)
        _widen_inputs(net, len(self.numerical), [len(c) for c in start.categories], added)
        if self.arch is not None:
            self.arch["inputs"] = self.arch["layers"][0]["in"] = x.shape[1]
        with torch.random.fork_rng(devices=[]), torch_threads(1):
            torch.manual_seed(self._params["seed"])
            self._train(x, y, self._loss(), on_epoch, net=net)
        return self

    def _ordered(self, frame: pd.DataFrame, target: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
        """The feature columns and the target, oldest row first; checked."""
        if len(frame) != len(target):
            raise OptimizeError("training failed: features and target differ in length")
        if len(frame) == 0:
            raise OptimizeError("training failed: no rows to train on")
        target = pd.Series(np.asarray(target), index=frame.index)
        ts = self.timestamp
        if ts and ts in frame.columns and not frame[ts].is_monotonic_increasing:
            order = frame[[ts]].reset_index(drop=True).sort_values(ts, kind="stable").index
            frame, target = frame.iloc[order], target.iloc[order]
        if target.isna().any():
            raise OptimizeError("training failed: the target has missing values")
        try:
            return frame[self.features], target
        except KeyError as exc:
            raise OptimizeError(f"training failed: {exc}") from None

    @staticmethod
    def _regression_values(target: pd.Series) -> np.ndarray:
        try:
            return target.to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise OptimizeError(f"training failed: regression target: {exc}") from None

    def _loss(self) -> nn.Module:
        return nn.CrossEntropyLoss() if self.task == "classification" else nn.MSELoss()

    def _train(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: nn.Module,
        on_epoch: EpochCallback | None,
        net: nn.Sequential | None = None,
    ) -> None:
        """Train ``net`` (default: a new network of ``params``) on ``x``, ``y``."""
        p = self._params
        if net is None:
            outputs = len(self.classes) if self.classes is not None else 1
            net = network(x.shape[1], p["hidden"], p["dropout"], outputs)
        self.net = net
        noise = float(self.augmentation.get("noise", 0.0))
        mixup = float(self.augmentation.get("mixup", 0.0))
        numerical = len(self.numerical)
        mixing = np.random.default_rng(p["seed"])
        regression = self.task == "regression"
        n = len(x)
        n_valid = round(n * VALIDATION) if p["patience"] > 0 else 0
        if n_valid < MIN_VALIDATION_ROWS or n - n_valid < MIN_VALIDATION_ROWS:
            n_valid = 0  # too few rows to stop early on: train every epoch
        x_train, y_train = x[: n - n_valid], y[: n - n_valid]
        x_valid, y_valid = x[n - n_valid :], y[n - n_valid :]
        optimizer = torch.optim.AdamW(net.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        generator = torch.Generator().manual_seed(p["seed"])
        best_loss, best_state, stale = math.inf, None, 0
        self.epochs_run = self.best_epoch = 0
        for epoch in range(1, p["epochs"] + 1):
            net.train()
            order = torch.randperm(len(x_train), generator=generator)
            for start in range(0, len(order), p["batch_size"]):
                batch = order[start : start + p["batch_size"]]
                xb, yb = x_train[batch], y_train[batch]
                if noise and numerical:
                    shape = (len(batch), numerical)
                    jitter = torch.randn(shape, generator=generator) * noise
                    xb = torch.cat([xb[:, :numerical] + jitter, xb[:, numerical:]], dim=1)
                if mixup:
                    share = float(mixing.beta(mixup, mixup))
                    pair = torch.randperm(len(batch), generator=generator)
                    out = net(share * xb + (1 - share) * xb[pair])
                    out = out.squeeze(1) if regression else out
                    loss = share * loss_fn(out, yb) + (1 - share) * loss_fn(out, yb[pair])
                else:
                    out = net(xb)
                    loss = loss_fn(out.squeeze(1) if regression else out, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            net.eval()
            self.epochs_run = epoch
            stop = False
            if n_valid:
                with torch.inference_mode():
                    out = net(x_valid)
                    valid_loss = float(loss_fn(out.squeeze(1) if regression else out, y_valid))
                if valid_loss < best_loss - 1e-7:
                    best_loss, stale, self.best_epoch = valid_loss, 0, epoch
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    stale += 1
                    stop = stale >= p["patience"]
            else:
                self.best_epoch = epoch
            if on_epoch is not None:
                on_epoch(epoch, self)
            if stop:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()

    # -- inference ------------------------------------------------------------------------------

    def _outputs(self, frame: pd.DataFrame) -> torch.Tensor:
        if self.net is None:
            raise OptimizeError("the torch MLP is not fitted")
        x = self._matrix(frame[self.features])
        with torch.inference_mode():
            return self.net(x)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        out = self._outputs(frame)
        if self.task == "classification":
            assert self.classes is not None
            index = out.argmax(dim=1).numpy()
            return np.asarray(self.classes)[index]
        return out.squeeze(1).double().numpy() * self.y_scale + self.y_mean

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Probability of the positive class for binary classifiers, else None."""
        if self.task != "classification" or self.classes is None or len(self.classes) != 2:
            return None
        return torch.softmax(self._outputs(frame), dim=1)[:, 1].double().numpy()

    # -- artifacts ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        if self.net is None or self.mean is None or self.scale is None:
            raise OptimizeError("the torch MLP is not fitted: nothing to save")
        if self.arch is not None:
            inputs, outputs = self.arch["inputs"], self.arch["outputs"]
        else:
            last = [m for m in self.net if isinstance(m, nn.Linear)][-1]
            inputs, outputs = self.net[0].in_features, last.out_features
        config = {
            "format": FORMAT if self.arch is None else ARCH_FORMAT,
            "task": self.task,
            "numerical": self.numerical,
            "categorical": self.categorical,
            "timestamp": self.timestamp,
            "params": self.params,
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
            "categories": self.categories,
            "classes": self.classes,
            "y_mean": self.y_mean,
            "y_scale": self.y_scale,
            "inputs": int(inputs),
            "outputs": int(outputs),
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "compression": list(self.compression),
        }
        if self.arch is not None:
            config["arch"] = self.arch
        buffer = io.BytesIO()
        buffer.write(MAGIC)
        torch.save({"config": config, "state": self.net.state_dict()}, buffer)
        return buffer.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> TorchMLP:
        if not data.startswith(MAGIC):
            raise ArtifactError("model artifact is not a torch MLP")
        try:
            archive = io.BytesIO(data[len(MAGIC) :])
            with warnings.catch_warnings():  # quantized tensors still rebuild via TypedStorage
                warnings.filterwarnings("ignore", "TypedStorage is deprecated", UserWarning)
                saved = torch.load(archive, weights_only=True, map_location="cpu")
            config, state = saved["config"], saved["state"]
            if config.get("format") not in (FORMAT, ARCH_FORMAT):
                raise ValueError(f"unknown torch MLP format {config.get('format')!r}")
            model = TorchMLP(
                config["numerical"],
                config["categorical"],
                config["task"],
                {k: v for k, v in config["params"].items() if k not in ("width", "depth")},
                timestamp=config["timestamp"],
            )
            model.mean = np.asarray(config["mean"], dtype=np.float64)
            model.scale = np.asarray(config["scale"], dtype=np.float64)
            model.categories = [list(c) for c in config["categories"]]
            model.classes = config["classes"]
            model.y_mean, model.y_scale = float(config["y_mean"]), float(config["y_scale"])
            model.epochs_run = int(config.get("epochs_run", 0))
            model.best_epoch = int(config.get("best_epoch", 0))
            model.compression = list(config.get("compression", []))
            p = model._params
            if config["format"] == ARCH_FORMAT:
                from reoptd.models.torch._arch import rebuild

                model.arch = config["arch"]
                model.net = rebuild(model.arch)
            else:
                model.net = network(config["inputs"], p["hidden"], p["dropout"], config["outputs"])
            from reoptd.models.torch._arch import load_state

            load_state(model.net, model.arch, state)
            model.net.eval()
        except Exception as exc:  # a damaged archive can raise anything
            raise ArtifactError(f"model artifact does not load: {exc}") from None
        return model


def _widen_inputs(net: nn.Sequential, numerical: int, known: list[int], added: list[int]) -> None:
    """Give ``net``'s first layer an input for each new category (``added`` per categorical
    column, appended after its ``known`` ones), with zero weights: the network predicts as
    before until training moves them."""
    if not any(added):
        return
    first = net[0]
    holder = first if isinstance(first, nn.Sequential) else net  # a low-rank pair, or the net
    layer = holder[0]
    assert isinstance(layer, nn.Linear)
    old_columns: list[int] = list(range(numerical))
    at = numerical
    for count, extra in zip(known, added, strict=True):
        old_columns.extend(range(at, at + count))
        at += count + extra
    wider = nn.Linear(at, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        wider.weight.zero_()
        wider.weight[:, old_columns] = layer.weight
        if layer.bias is not None:
            assert wider.bias is not None
            wider.bias.copy_(layer.bias)
    holder[0] = wider
