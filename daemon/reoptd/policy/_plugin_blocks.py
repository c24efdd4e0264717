"""What the policy schema needs to validate plugin names and options against the registries of
``reoptd.plugins`` (``_schema`` uses it): a validator for a registered name, a JSON-schema
extra that lists and describes the registered names, and ``PluginBlocks``, a block whose keys
include plugins' option blocks (``compress.distill`` ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from reoptd.plugins import PluginRegistry

__all__ = ["Block", "PluginBlocks", "names_schema", "registered", "relocated"]

M = TypeVar("M", bound=BaseModel)


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def registered(registry: PluginRegistry[Any], *, where: Callable[[Any], bool] | None = None):
    """A validator for a plugin's name: it must be registered (and pass ``where``)."""

    def check(name: str) -> str:
        known = [p.name for p in registry.plugins() if where is None or where(p)]
        if name in known:
            return name
        hint = registry.suggest(name, known)
        close = f" — did you mean `{hint}`?" if hint else ""
        raise ValueError(f"unknown {registry.kind} {name!r}{close} choose from {', '.join(known)}")

    return AfterValidator(check)


def names_schema(
    registry: PluginRegistry[Any],
    lead: str,
    describe: Callable[[Any], str] = lambda p: p.description,
    where: Callable[[Any], bool] | None = None,
    items: bool = False,
) -> Callable[[dict[str, Any]], None]:
    """A ``json_schema_extra`` that lists the registered names (enum) and describes each."""

    def extra(schema: dict[str, Any]) -> None:
        plugins = [p for p in registry.plugins() if where is None or where(p)]
        target = schema.get("items", schema) if items else schema
        target["enum"] = [p.name for p in plugins]
        schema["description"] = lead + "; ".join(f"{p.name}: {describe(p)}" for p in plugins)

    return extra


def relocated(error: ValidationError, prefix: tuple[str | int, ...]) -> list[InitErrorDetails]:
    """``error``'s line errors under ``prefix``, messages and types kept."""
    return [
        InitErrorDetails(
            type=PydanticCustomError(e["type"], e["msg"]),
            loc=(*prefix, *e["loc"]),
            input=e.get("input"),
        )
        for e in error.errors()
    ]


class PluginBlocks(Block):
    """A block whose keys include the option blocks of plugins (``plugin_blocks``): each is
    validated by its plugin's config model, filled with its defaults when absent, dumped beside
    the block's own fields and read with ``options(key, Model)``."""

    _options: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    @classmethod
    def plugin_blocks(cls) -> dict[str, type[BaseModel]]:
        """Option blocks by key: the models that validate them."""
        return {}

    def options(self, key: str, model: type[M]) -> M:
        """The validated option block ``key`` (a ``model``)."""
        value = self._options.get(key)
        if not isinstance(value, model):
            raise KeyError(f"{type(self).__name__.lower()} has no {model.__name__} block {key!r}")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _validate_plugin_blocks(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        blocks = cls.plugin_blocks()
        errors: list[InitErrorDetails] = []
        options: dict[str, BaseModel] = {}
        for key, model in blocks.items():
            value = data.get(key)
            try:
                options[key] = model.model_validate({} if value is None else value)
            except ValidationError as exc:
                errors.extend(relocated(exc, (key,)))
        try:
            block = handler({k: v for k, v in data.items() if k not in blocks})
        except ValidationError as exc:
            errors = relocated(exc, ()) + errors
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        block._options = options
        return block

    @model_serializer(mode="wrap")
    def _dump_plugin_blocks(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data = handler(self)
        for key, value in self._options.items():
            data[key] = value.model_dump(
                mode=info.mode,
                by_alias=bool(info.by_alias),
                exclude_none=info.exclude_none,
                exclude_defaults=info.exclude_defaults,
            )
        return data

    @classmethod
    def _plugin_blocks_schema(cls, schema: dict[str, Any]) -> None:
        for key, model in cls.plugin_blocks().items():
            block = model.model_json_schema(by_alias=True)
            for name, definition in block.pop("$defs", {}).items():
                schema.setdefault("$defs", {})[name] = definition
            schema.setdefault("properties", {})[key] = block
