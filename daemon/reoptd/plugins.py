"""Plugin registries: model families, optimize steps, compression methods, drift methods, sources.

Each plugin is a small frozen declaration (its name, its description, its config model and
defaults, and callables that import the heavy implementation only when called) that its own
module registers on import. The policy schema validates names and parameters against these
registries instead of keeping lists of its own.

Built-in plugins are found by importing their modules by name (``builtins`` below); third-party
ones through entry points of the group ``reoptd.<registry>`` (``reoptd.families``,
``reoptd.steps``, ``reoptd.compress_methods``, ``reoptd.drift_methods``, ``reoptd.sources``),
whose modules register themselves in the same way::

    # pyproject.toml of a plugin package
    [project.entry-points."reoptd.steps"]
    augment = "my_package.augment"

This module sits on the ground floor: it imports nothing of reoptd but ``errors``, so every
layer may read the registries. Who calls it: ``policy`` (validation, schema), ``models``
(build/load), ``optimize`` (the pipeline and compress plan), ``monitor`` (drift methods) and
``data`` (``open_source``).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from reoptd.errors import ReoptdError

__all__ = [
    "COMPRESS_METHODS",
    "DRIFT_METHODS",
    "FAMILIES",
    "SOURCES",
    "STEPS",
    "CompressMethod",
    "DriftMethod",
    "ModelFamily",
    "PluginRegistry",
    "SourceKind",
    "StepPlugin",
    "UnknownPlugin",
    "drift_methods_by_kind",
]

log = logging.getLogger("reoptd.plugins")


class UnknownPlugin(ReoptdError, LookupError):
    """A name no plugin of a registry has; the message lists the known ones (and a close one)."""

    def __init__(self, kind: str, name: str, known: Sequence[str], hint: str | None) -> None:
        self.kind, self.name, self.known, self.hint = kind, name, tuple(known), hint
        close = f" — did you mean `{hint}`?" if hint else ""
        super().__init__(f"unknown {kind} {name!r}{close} choose from {', '.join(known)}")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


P = TypeVar("P", bound=_Named)


class PluginRegistry(Generic[P]):
    """Plugins of one kind by name, in registration order (built-ins first, in ``builtins``
    order). The built-in modules and entry points are imported on the first read."""

    def __init__(self, kind: str, group: str, builtins: Sequence[str] = ()) -> None:
        self.kind = kind
        self.group = group
        self._builtins = tuple(builtins)
        self._plugins: dict[str, P] = {}
        self._origin: dict[str, str] = {}  # plugin name -> the module that registered it
        self._loaded = False
        self._lock = threading.RLock()

    def register(self, plugin: P, *, replace: bool = False) -> P:
        """Add ``plugin``; a second plugin of the same name is refused unless ``replace``."""
        with self._lock:
            if plugin.name in self._plugins and not replace:
                if self._plugins[plugin.name] == plugin:
                    return plugin  # a module imported twice (e.g. under two names)
                raise ValueError(f"{self.kind} {plugin.name!r} is registered already")
            self._plugins[plugin.name] = plugin
            self._origin[plugin.name] = sys._getframe(1).f_globals.get("__name__", "")
        return plugin

    def unregister(self, name: str) -> None:
        with self._lock:
            self._plugins.pop(name, None)
            self._origin.pop(name, None)

    def get(self, name: str) -> P:
        """The plugin called ``name``; ``UnknownPlugin`` (with a did-you-mean) otherwise."""
        self._load()
        try:
            return self._plugins[name]
        except KeyError:
            raise UnknownPlugin(self.kind, name, self.names(), self.suggest(name)) from None

    def names(self) -> tuple[str, ...]:
        self._load()
        return tuple(self._plugins)

    def plugins(self) -> tuple[P, ...]:
        self._load()
        return tuple(self._plugins.values())

    def suggest(self, name: str, choices: Sequence[str] | None = None) -> str | None:
        """The known name closest to ``name`` (a typo's correction), if any is close."""
        close = difflib.get_close_matches(name, choices or self.names(), n=1, cutoff=0.5)
        return close[0] if close else None

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._plugins

    def __iter__(self) -> Iterator[P]:
        return iter(self.plugins())

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True  # before importing: a plugin module may read the registry
            for module in self._builtins:
                importlib.import_module(module)
            # built-ins first, in ``builtins`` order, whichever of their modules was imported
            # first (by an unrelated import); then the others in registration order
            rank = {module: i for i, module in enumerate(self._builtins)}
            ordered = sorted(
                self._plugins, key=lambda n: rank.get(self._origin.get(n, ""), len(rank))
            )
            self._plugins = {name: self._plugins[name] for name in ordered}
            for entry in entry_points(group=self.group):
                try:
                    entry.load()
                except Exception:  # a broken third-party plugin must not stop the daemon
                    log.exception("%s plugin %s (%s) does not load", self.kind, entry.name, entry)


# -- the kinds of plugin --------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFamily:
    """A model family (``train.family``): how to build, train and reload its models.

    ``build(policy, params)`` returns an unfitted model with ``fit``, ``predict``,
    ``predict_score``, ``to_bytes`` and ``params``; ``load(data)`` rebuilds one from artifact
    bytes that start with ``magic`` (the family with an empty ``magic`` loads every other one).
    """

    name: str
    description: str
    build: Callable[[Any, dict[str, Any] | None], Any]
    load: Callable[[bytes], Any]
    magic: bytes = b""
    #: ``train.params`` names it takes (None: any, checked by the estimator itself)
    params: tuple[str, ...] | None = None
    #: the values ``train.estimator`` may take (None: an import path, required)
    estimators: tuple[str, ...] | None = None
    #: what a run trains, for records (empty: ``train.estimator``)
    learner: str = ""
    #: ``tune.space`` entries (as written in a policy) searched when the policy gives none
    default_space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: ``check(estimator, params)``: the problems of ``train.estimator`` and ``train.params``
    #: as ``(field, message)`` pairs, ``field`` relative to ``train`` (``estimator``,
    #: ``params.max_iter``); run when a policy is validated, so a policy never names code
    check: Callable[[str, Mapping[str, Any]], list[tuple[str, str]]] | None = None


@dataclass(frozen=True)
class StepPlugin:
    """A pipeline step (``pipeline:``). ``create()`` returns an object with ``name`` and
    ``run(ctx) -> dict`` (``reoptd.optimize.Step``); ``check(policy)`` lists the policy's
    problems with this step in its pipeline; ``config`` is the model of the step's own top-level
    block (named after the step), if it has one."""

    name: str
    description: str
    create: Callable[[], Any]
    check: Callable[[Any], list[str]] | None = None
    config: type[BaseModel] | None = None


@dataclass(frozen=True)
class CompressMethod:
    """A compression method (``compress.methods``).

    ``apply(model, fit_rows, policy)`` returns a compressed copy of a fitted model. Methods chain
    by ``order`` (lowest first); at most one method that ``ends_chain`` ends a chain; only a
    method that takes ``any_model`` can start from a non-torch model. ``config`` is the model of
    its options block ``compress.<options>`` (``options`` defaults to the method's name)."""

    name: str
    description: str
    apply: Callable[[Any, Any, Any], Any]
    order: int
    ends_chain: bool = False
    any_model: bool = False
    default: bool = True  # tried when the policy does not list its methods
    config: type[BaseModel] | None = None
    options: str = ""
    #: ``explain(policy)``: what it does with the policy's options, for ``reoptd policy explain``
    explain: Callable[[Any], str] | None = None

    @property
    def options_key(self) -> str | None:
        """The key of its options block in ``compress:``, if it has options."""
        if self.options:
            return self.options
        return self.name if self.config is not None else None


@dataclass(frozen=True)
class DriftMethod:
    """A per-column drift method (``monitor.drift.method`` and friends), by the column kinds
    (numerical, categorical, text) it tests. ``min_values``: fewest non-null values per side it
    needs; ``sorted_input``: its result depends only on the sorted values; ``counts``: it only
    counts categories (a category dtype may feed it)."""

    name: str
    kinds: tuple[str, ...]
    min_values: int = 1
    sorted_input: bool = False
    counts: bool = False


@dataclass(frozen=True)
class SourceKind:
    """A kind of ``data.production`` (and, with ``open_labels``, of ``data.labels``).

    ``open(policy, store)`` returns the production source (``reoptd.data.Source``); ``store`` is
    the daemon's state, for kinds that read what the daemon stored (None elsewhere).
    ``open_labels(policy)`` returns the feed of late labels (``reoptd.data.LabelFiles``).
    ``check(policy)`` lists the policy's problems with this kind as its production source."""

    name: str
    description: str
    open: Callable[[Any, Any], Any]
    open_labels: Callable[[Any], Any] | None = None
    label_description: str = ""
    check: Callable[[Any], list[str]] | None = None


FAMILIES: PluginRegistry[ModelFamily] = PluginRegistry(
    "model family", "reoptd.families", ["reoptd.models.sklearn", "reoptd.models.torch"]
)
STEPS: PluginRegistry[StepPlugin] = PluginRegistry(
    "step",
    "reoptd.steps",
    [
        f"reoptd.optimize.steps.{name}"
        for name in ("retrain", "augment", "tune", "compress", "validate")
    ],
)
COMPRESS_METHODS: PluginRegistry[CompressMethod] = PluginRegistry(
    "compression method",
    "reoptd.compress_methods",
    [
        f"reoptd.optimize.compress.methods.{name}"
        for name in ("distillation", "pruning", "factorization", "quantization")
    ],
)
DRIFT_METHODS: PluginRegistry[DriftMethod] = PluginRegistry(
    "drift method", "reoptd.drift_methods", ["reoptd.monitor.drift_methods"]
)
SOURCES: PluginRegistry[SourceKind] = PluginRegistry(
    "data source", "reoptd.sources", ["reoptd.data.sources"]
)


def drift_methods_by_kind() -> dict[str, tuple[str, ...]]:
    """Registered drift methods by column kind (numerical, categorical, text), sorted by name."""
    kinds: dict[str, list[str]] = {"numerical": [], "categorical": [], "text": []}
    for method in DRIFT_METHODS.plugins():
        for kind in method.kinds:
            kinds.setdefault(kind, []).append(method.name)
    return {kind: tuple(sorted(names, key=str.lower)) for kind, names in kinds.items()}
