"""The serving hand-off: ``Champion`` keeps the current champion of a model loaded in serving code
and swaps to a newly promoted version in the background.

Who calls it: your prediction service::

    from reoptd.client import Champion

    with Champion("churn", url="http://127.0.0.1:8464") as champion:
        scores = champion.predict_proba(frame)     # a pandas DataFrame with the feature columns
        print(champion.version)

A background thread polls the daemon (``If-None-Match`` with the artifact's ETag; 304 means
nothing changed). A new version is downloaded, its sha256 checked, and loaded completely before
one reference swap, so a call never sees a half-loaded model, and each call uses exactly one
version (``predict_versioned`` tells which). With ``home=`` it reads the registry under a
REOPTD_HOME directly instead (same host, no API needed); its artifacts come from
``REOPTD_ARTIFACTS`` (or ``artifacts=``, e.g. ``s3://bucket/prefix``) when the daemon keeps them
on object storage.

Artifacts of sklearn models in their Python form are pickles, and loading a pickle runs code:
point the client only at a daemon (and a REOPTD_HOME) you trust, or pass ``allow_pickle=False``
to refuse them (before anything is unpickled). An ONNX serving form (``compress.serving``) and a
torch state dict load without running code. An ONNX form also serves numpy arrays directly,
without pandas: ``champion.predict_arrays(numerical, categorical)`` (``champion.arrays(frame)``
makes the two arrays from a DataFrame); ``champion.form`` says which form is loaded.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd

from reoptd.errors import ArtifactError, ModelNotFound, ReoptdError
from reoptd.models import Model, OnnxModel, SklearnModel, load_model, serving_form

if TYPE_CHECKING:
    from reoptd.store import Store

log = logging.getLogger("reoptd.client")


@dataclass(frozen=True)
class _Loaded:
    version: int
    sha256: str
    model: Model
    form: str  # onnx, torch or pickle (``reoptd.models.serving_form``)


class Champion:
    """The champion of model ``name``, from the API at ``url`` or the registry under ``home``."""

    def __init__(
        self,
        name: str,
        *,
        url: str | None = None,
        home: str | Path | None = None,
        artifacts: str | None = None,
        poll_every: float = 5.0,
        token: str | None = None,
        timeout: float = 30.0,
        allow_pickle: bool = True,
    ) -> None:
        if (url is None) == (home is None):
            raise ValueError("Champion needs exactly one of url= (the daemon's API) or home=")
        if poll_every <= 0:
            raise ValueError(f"poll_every must be positive, got: {poll_every}")
        self.name = name
        self.poll_every = poll_every
        self.allow_pickle = allow_pickle  # False: a pickled artifact is refused, never loaded
        self._http: httpx.Client | None = None
        self._registry: Store | None = None
        if url is not None:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        else:
            from reoptd.settings import Settings
            from reoptd.store import open_store

            assert home is not None  # exactly one of url= and home=, checked above
            settings = Settings(home=Path(home))
            if artifacts is not None:  # else REOPTD_ARTIFACTS, as the daemon reads it
                settings = Settings(home=Path(home), artifacts_url=artifacts)
            self._registry = open_store(settings.database_url, settings.artifacts)
        self._stop = threading.Event()
        self._current: _Loaded | None = None
        self.swaps = 0  # how many times a newer champion replaced the loaded one
        self.last_error: str | None = None  # the last failed poll, None once one succeeds
        try:
            self._current = self._fetch(None)
            if self._current is None:  # pragma: no cover - a 304 without an ETag sent
                raise ArtifactError(f"model {name!r}: no champion artifact received")
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._poll, name=f"reoptd-champion-{name}")
        self._thread.daemon = True
        self._thread.start()

    # -- serving ----------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """The version that serves the next call."""
        return self._loaded().version

    def _loaded(self) -> _Loaded:
        current = self._current
        if current is None:
            raise ReoptdError(f"champion client for {self.name!r} is closed")
        return current

    @property
    def form(self) -> str:
        """The loaded version's serving form: ``onnx``, ``torch`` or ``pickle``."""
        return self._loaded().form

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_versioned(frame)[1]

    def arrays(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(numerical, categorical) arrays of ``frame`` for ``predict_arrays``: the model's
        numerical and categorical features (an sklearn model in its Python form names its
        columns only: all of them go in the second array)."""
        numerical, categorical = _roles(self._loaded().model)
        return (
            frame[numerical].to_numpy(dtype=np.float64),
            frame[categorical].to_numpy(dtype=object),
        )

    def predict_arrays(self, numerical: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """Predictions from arrays of the numerical and the categorical features (in the model's
        ``numerical`` / ``categorical`` order): no pandas per call for an ONNX form."""
        current = self._loaded()
        model = current.model
        if isinstance(model, OnnxModel):
            return model.predict_arrays(numerical, categorical)
        return model.predict(self._frame(model, numerical, categorical))

    def predict_proba_arrays(self, numerical: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """P(positive class) from arrays, for binary classifiers (see ``predict_arrays``)."""
        current = self._loaded()
        model = current.model
        if isinstance(model, OnnxModel) and model.classes and len(model.classes) == 2:
            return model.predict_proba_arrays(numerical, categorical)[:, 1]
        scores = model.predict_score(self._frame(model, numerical, categorical))
        if scores is None:
            raise ReoptdError(
                f"model {self.name!r} v{current.version} gives no probabilities"
                " (not a binary classifier): use predict_arrays"
            )
        return scores

    @staticmethod
    def _frame(model: Model, numerical: np.ndarray, categorical: np.ndarray) -> pd.DataFrame:
        numeric_names, other_names = _roles(model)
        frame = pd.DataFrame(np.asarray(categorical, dtype=object), columns=other_names)
        for i, column in enumerate(numeric_names):
            frame[column] = np.asarray(numerical, dtype=np.float64)[:, i]
        return frame.infer_objects()

    def predict_versioned(self, frame: pd.DataFrame) -> tuple[int, np.ndarray]:
        """(version, predictions): the version that made them, from one model for the batch."""
        current = self._loaded()  # one read of the reference: the whole call uses this model
        return current.version, current.model.predict(frame)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_proba_versioned(frame)[1]

    def predict_proba_versioned(self, frame: pd.DataFrame) -> tuple[int, np.ndarray]:
        """(version, P(positive class)) for binary classifiers."""
        current = self._loaded()
        scores = current.model.predict_score(frame)
        if scores is None:
            raise ReoptdError(
                f"model {self.name!r} v{current.version} gives no probabilities"
                " (not a binary classifier): use predict"
            )
        return current.version, scores

    # -- loading ----------------------------------------------------------------------------------

    def _fetch(self, known: _Loaded | None) -> _Loaded | None:
        """The champion if it differs from ``known`` (fully loaded and verified), else None."""
        if self._http is not None:
            return self._fetch_http(known)
        return self._fetch_registry(known)

    def _fetch_http(self, known: _Loaded | None) -> _Loaded | None:
        assert self._http is not None
        headers = {"If-None-Match": f'"{known.sha256}"'} if known else {}
        response = self._http.get(f"/models/{self.name}/champion/artifact", headers=headers)
        if response.status_code == 304:
            return None
        if response.status_code == 404:
            raise ModelNotFound(self.name, _detail(response))
        if response.status_code != 200:
            raise ReoptdError(
                f"champion of {self.name!r}: HTTP {response.status_code}: {_detail(response)}"
            )
        expected = response.headers.get("X-Reoptd-Sha256", "")
        data = response.content
        actual = hashlib.sha256(data).hexdigest()
        if not expected or actual != expected:
            raise ArtifactError(
                f"champion of {self.name!r}: downloaded artifact sha256 {actual[:12]}… does not"
                f" match the daemon's {expected[:12] or 'missing header'}…; not loaded"
            )
        version = int(response.headers["X-Reoptd-Version"])
        return self._load(version, actual, data)

    def _fetch_registry(self, known: _Loaded | None) -> _Loaded | None:
        assert self._registry is not None
        row = self._registry.champion(self.name)
        if row is None:
            raise ModelNotFound(self.name, "it has no champion yet")
        if known is not None and row.sha256 == known.sha256 and row.version == known.version:
            return None
        data = self._registry.load_artifact(row)  # the store verifies the sha256
        return self._load(row.version, row.sha256, data)

    def _load(self, version: int, sha256: str, data: bytes) -> _Loaded:
        form = serving_form(data)
        if form == "pickle" and not self.allow_pickle:
            raise ArtifactError(
                f"champion v{version} of {self.name!r} is a pickle (an sklearn model in its"
                " Python form) and this client refuses pickles (allow_pickle=False): loading one"
                " runs code; give the model an ONNX serving form (compress.serving: onnx)"
            )
        return _Loaded(version, sha256, load_model(data, allow_pickle=self.allow_pickle), form)

    def refresh(self) -> bool:
        """Check for a new champion now; True if one was swapped in."""
        fresh = self._fetch(self._current)
        if fresh is None or self._stop.is_set():
            return False
        old = self._current
        if old is not None and (fresh.version, fresh.sha256) == (old.version, old.sha256):
            return False
        self._current = fresh  # the one swap: readers see the old or the new model, never a mix
        self.swaps += 1
        log.info(
            "%s: now serving v%d (was v%s)",
            self.name,
            fresh.version,
            old.version if old else None,
        )
        return True

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_every):
            try:
                self.refresh()
                self.last_error = None
            except Exception as exc:  # keep serving the loaded version; try again next time
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: champion poll failed, still serving: %s", self.name, exc)

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        if self._http is not None:
            self._http.close()
        if self._registry is not None:
            self._registry.close()
        self._current = None

    def __enter__(self) -> Champion:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _roles(model: Model) -> tuple[list[str], list[str]]:
    """(numerical, categorical) feature names of ``model``; an sklearn model in its Python form
    names its columns only, all returned as the second."""
    if isinstance(model, SklearnModel):
        return [], list(model.features)
    return list(model.numerical), list(model.categorical)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text[:200]
