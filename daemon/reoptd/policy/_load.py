"""Reading policy files, with errors that name file, line and field.

``load_policy`` is what the CLI and the service call; ``load_policies`` reads a directory and
returns the valid policies beside the errors of the others, so one bad file never stops the rest.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from reoptd.errors import PolicyError
from reoptd.policy._schema import Policy


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(str(path), [f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_policy(text, str(path))


def parse_policy(text: str, name: str = "<policy>") -> Policy:
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(name, [f"{name}{line}: not valid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(name, [f"{name}:1: a policy is a YAML mapping (key: value lines)"])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(error, node, name) for error in exc.errors()]
        raise PolicyError(name, problems) from None
    policy._source = Path(name)
    return policy


def load_policies(directory: str | Path) -> tuple[list[Policy], list[PolicyError]]:
    """Every ``*.yaml``/``*.yml`` in ``directory``: valid policies, and the errors of the rest."""
    directory = Path(directory)
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    policies: list[Policy] = []
    errors: list[PolicyError] = []
    seen: dict[str, Path] = {}
    for file in files:
        try:
            policy = load_policy(file)
        except PolicyError as exc:
            errors.append(exc)
            continue
        if policy.model in seen:
            errors.append(
                PolicyError(
                    str(file),
                    [f"{file}: model {policy.model!r} is already defined in {seen[policy.model]}"],
                )
            )
            continue
        seen[policy.model] = file
        policies.append(policy)
    return policies, errors


def _describe(error: Any, root: yaml.Node | None, name: str) -> str:
    loc = tuple(error["loc"])
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = _line_of(root, loc)
    where = f"{name}:{line}" if line else name
    if error["type"] == "extra_forbidden":
        key = str(loc[-1])
        message = f"unknown key `{key}`"
        close = difflib.get_close_matches(key, _allowed_keys(loc[:-1]), n=1, cutoff=0.6)
        if close:
            message += f" — did you mean `{close[0]}`?"
        else:
            allowed = _allowed_keys(loc[:-1])
            if allowed:
                message += f" (allowed: {', '.join(allowed)})"
        return f"{where}: {field}: {message}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "required field is missing"
    elif (
        "input" in error
        and error["type"] not in ("missing",)
        and not isinstance(error["input"], dict | list)
    ):
        message += f" (got {error['input']!r})"
    return f"{where}: {field}: {message}"


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node of ``loc`` that exists in the YAML tree."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys a policy allows at ``loc`` (by walking the schema's type annotations)."""
    cls: Any = Policy
    for part in loc:
        cls = _unwrap(cls)
        if isinstance(part, int) or not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            args = typing.get_args(cls)
            cls = args[-1] if args else None
            if isinstance(part, int):
                continue
            if cls is None:
                return []
            continue
        field = _field_by_alias(cls, part)
        if field is None:
            cls = _plugin_blocks(cls).get(part)
            if cls is None:
                return []
            continue
        cls = field.annotation
    cls = _unwrap(cls)
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return [f.alias or n for n, f in cls.model_fields.items()] + list(_plugin_blocks(cls))
    return []


def _plugin_blocks(cls: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The plugin option blocks a block takes beside its fields (``compress.distill`` ...)."""
    blocks = getattr(cls, "plugin_blocks", None)
    return blocks() if callable(blocks) else {}


def _field_by_alias(cls: type[BaseModel], key: str) -> Any:
    for name, field in cls.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> ``X``; leaves list/dict generics alone."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp
