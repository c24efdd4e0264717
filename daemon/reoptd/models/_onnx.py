"""The compiled serving form: an ONNX graph run by ONNX Runtime, behind numpy preprocessing.

A model of any family (a torch MLP, an sklearn pipeline) may be exported to this form by the
compress step (``reoptd.optimize.compress``). The artifact is ``ONNX_MAGIC``, the length of a JSON
header (8 bytes, little-endian), the header, then the ONNX model. The header holds the
preprocessing as plain numbers (the means and scales of the numerical features, the categories of
the categorical ones, in one-hot column order), the classes, the task and where the form came
from. Loading parses JSON and hands the graph to ONNX Runtime: no pickle is read, no code runs.

Preprocessing runs on numpy arrays, not pandas: ``predict_arrays(numerical, categorical)`` takes
an ``(n, k)`` float array of the numerical features and an ``(n, m)`` array of the categorical
ones, both in the order of ``numerical`` / ``categorical`` (``arrays(frame)`` makes them from a
DataFrame, once, outside the serving loop). The numerical features are standardized (a missing
value becomes 0 after standardization for a torch source; it stays missing for an sklearn one,
whose estimator decides), the categorical ones one-hot encoded with unseen categories as zeros,
exactly as the source model's own preprocessing does.

Graph outputs, by ``output``: ``logits`` (a torch classifier: softmax gives the probabilities),
``standardized`` (a torch regressor: times ``y_scale`` plus ``y_mean``), ``probabilities`` (an
sklearn classifier converted by skl2onnx, the second output) and ``values`` (an sklearn
regressor).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pandas as pd

from reoptd.errors import ArtifactError, OptimizeError
from reoptd.models._forms import ONNX_MAGIC

FORMAT = 1
OUTPUTS = ("logits", "standardized", "probabilities", "values")


class OnnxModel:
    """A model in its ONNX serving form; ``to_bytes`` / ``from_bytes`` round-trip it."""

    family = "onnx"

    def __init__(self, header: dict[str, Any], graph: bytes, threads: int = 1) -> None:
        try:
            self.task: str = header["task"]
            self.numerical: list[str] = list(header["numerical"])
            self.categorical: list[str] = list(header["categorical"])
            self.mean = np.asarray(header["mean"], dtype=np.float64)
            self.scale = np.asarray(header["scale"], dtype=np.float64)
            self.nan_to_zero = bool(header["nan_to_zero"])
            self.categories: list[list[str]] = [[str(c) for c in cs] for cs in header["categories"]]
            self.classes: list[Any] | None = header["classes"]
            self.y_mean = float(header.get("y_mean", 0.0))
            self.y_scale = float(header.get("y_scale", 1.0))
            self.output: str = header["output"]
            self.source: str = header["source"]
            self.compression: list[str] = list(header.get("compression", []))
            self._params: dict[str, Any] = dict(header.get("params", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"ONNX serving form: bad header field {exc}") from None
        if self.output not in OUTPUTS:
            raise ArtifactError(f"ONNX serving form: unknown output kind {self.output!r}")
        if len(self.mean) != len(self.numerical) or len(self.scale) != len(self.numerical):
            raise ArtifactError("ONNX serving form: means/scales do not fit numerical features")
        if len(self.categories) != len(self.categorical):
            raise ArtifactError("ONNX serving form: categories do not fit categorical features")
        self.header = dict(header)
        self.graph = graph
        self.width = len(self.numerical) + sum(len(c) for c in self.categories)
        # one-hot lookup: each column's categories sorted, and the one-hot column of each
        self._lookup: list[tuple[np.ndarray, np.ndarray, int]] = []
        offset = len(self.numerical)
        for cats in self.categories:
            values = np.asarray(cats, dtype=str)
            order = np.argsort(values, kind="stable")
            self._lookup.append((values[order], order + offset, len(values)))
            offset += len(values)
        self._session = _session(graph, threads)
        self._input = self._session.get_inputs()[0].name

    # -- the interface every model has --------------------------------------------------------

    @property
    def features(self) -> list[str]:
        return [*self.numerical, *self.categorical]

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def fit(self, frame: pd.DataFrame, target: pd.Series) -> OnnxModel:
        raise OptimizeError(
            "an ONNX serving form is exported from a trained model, not trained: retrain builds"
            " a model of the policy's family"
        )

    def arrays(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The two arrays ``predict_arrays`` takes, from a DataFrame with the feature columns."""
        numerical = frame[self.numerical].to_numpy(dtype=np.float64)
        categorical = frame[self.categorical].to_numpy(dtype=object)
        return numerical, categorical

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_arrays(*self.arrays(frame))

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Probability of the positive class for binary classifiers, else None."""
        if self.task != "classification" or self.classes is None or len(self.classes) != 2:
            return None
        return self.predict_proba_arrays(*self.arrays(frame))[:, 1]

    # -- serving on arrays --------------------------------------------------------------------

    def matrix(self, numerical: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """The graph's float32 input: standardized numerical features, then the one-hot blocks."""
        n = len(numerical) if len(self.numerical) else len(categorical)
        x = np.zeros((n, self.width), dtype=np.float32)
        if self.numerical:
            standard = (np.asarray(numerical, dtype=np.float64) - self.mean) / self.scale
            if self.nan_to_zero:
                standard = np.nan_to_num(standard, nan=0.0, posinf=0.0, neginf=0.0)
            x[:, : len(self.numerical)] = standard
        for j, (values, columns, size) in enumerate(self._lookup):
            if not size:
                continue
            column = np.asarray(categorical[:, j]).astype(str)
            pos = np.minimum(np.searchsorted(values, column), size - 1)
            known = values[pos] == column  # unseen categories stay all zeros
            x[np.flatnonzero(known), columns[pos[known]]] = 1.0
        return x

    def outputs(self, numerical: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """The graph's main output: logits, probabilities or values (see the module doc)."""
        result = self._session.run(None, {self._input: self.matrix(numerical, categorical)})
        return np.asarray(result[1] if self.output == "probabilities" else result[0])

    def predict_proba_arrays(self, numerical: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """Class probabilities, one column per class of ``classes`` (classifiers only)."""
        if self.task != "classification":
            raise OptimizeError("a regressor gives no class probabilities")
        out = self.outputs(numerical, categorical).astype(np.float64)
        if self.output == "logits":
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out

    def predict_arrays(self, numerical: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        out = self.outputs(numerical, categorical)
        if self.task == "classification":
            assert self.classes is not None
            return np.asarray(self.classes)[out.argmax(axis=1)]
        values = out.reshape(len(out), -1)[:, 0].astype(np.float64)
        if self.output == "standardized":
            return values * self.y_scale + self.y_mean
        return values

    # -- artifacts ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        header = json.dumps(self.header, sort_keys=True).encode()
        return ONNX_MAGIC + struct.pack("<Q", len(header)) + header + self.graph

    @staticmethod
    def from_bytes(data: bytes, threads: int = 1) -> OnnxModel:
        if not data.startswith(ONNX_MAGIC):
            raise ArtifactError("model artifact is not an ONNX serving form")
        start = len(ONNX_MAGIC) + 8
        try:
            (length,) = struct.unpack("<Q", data[len(ONNX_MAGIC) : start])
            header = json.loads(data[start : start + length])
        except (struct.error, ValueError) as exc:
            raise ArtifactError(f"ONNX serving form: unreadable header: {exc}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ArtifactError("ONNX serving form: unknown format")
        return OnnxModel(header, data[start + length :], threads)


def _session(graph: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a damaged graph can raise anything
        raise ArtifactError(f"ONNX serving form: the graph does not load: {exc}") from None
