"""Model families behind one interface (``fit``, ``predict``, ``predict_score``, ``to_bytes``)."""

from reoptd.models._sklearn import SklearnModel, import_estimator

__all__ = ["SklearnModel", "import_estimator", "load_model"]


def load_model(data: bytes) -> SklearnModel:
    """Rebuild a model from its artifact bytes (sha256 already verified by the store)."""
    return SklearnModel.from_bytes(data)
