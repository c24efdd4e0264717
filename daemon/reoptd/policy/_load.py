"""Reading policy files, with errors that name file, line and field.

``load_policy`` is what the CLI and the service call; ``load_policies`` reads a directory and
returns the valid policies beside the errors of the others, so one bad file never stops the rest.
"""

from __future__ import annotations

import codecs
import difflib
import stat
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.error import Mark
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reoptd.errors import PolicyError
from reoptd.policy._schema import Policy
from reoptd.settings import PolicyLimits

#: deepest nesting of YAML collections a policy may have (a real one has fewer than 10)
MAX_DEPTH = 64
#: most YAML values a policy may hold once aliases are expanded (a real one has a few hundred)
MAX_NODES = 50_000


def load_policy(path: str | Path) -> Policy:
    """Read and validate one policy file. Anything wrong with it (unreadable, not a regular
    file, over ``REOPTD_POLICY_MAX_BYTES``, not UTF-8, not YAML, too deep, aliases expanding too
    far, invalid fields, estimators off the operator's allowlist) is a ``PolicyError`` naming
    the file (and line and field when there is one)."""
    path = Path(path)
    name = str(path)
    limit = PolicyLimits().policy_max_bytes
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise PolicyError(name, [f"{name}: not a regular file"])
        if info.st_size > limit:
            raise PolicyError(name, [f"{name}: {_too_big(info.st_size, limit)}"])
        with path.open("rb") as file:
            raw = file.read(limit + 1)
    except OSError as exc:
        raise PolicyError(name, [f"{name}: cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > limit:  # grew since stat
        raise PolicyError(name, [f"{name}: {_too_big(len(raw), limit)}"])
    return parse_policy(_decode(raw, name), name)


def parse_policy(text: str, name: str = "<policy>") -> Policy:
    limit = PolicyLimits().policy_max_bytes
    if len(text) > limit:  # characters: at least as many bytes
        raise PolicyError(name, [f"{name}: {_too_big(len(text.encode()), limit)}"])
    try:
        node, data = _read_yaml(text)
    except _Refused as exc:
        where = f"{name}:{exc.mark.line + 1}" if exc.mark else name
        raise PolicyError(name, [f"{where}: {exc.field}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(name, [f"{name}{line}: not valid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(name, [f"{name}:1: a policy is a YAML mapping (key: value lines)"])
    model = data.get("model") if isinstance(data.get("model"), str) else None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(error, node, name) for error in exc.errors()]
        raise PolicyError(name, problems, model=model) from None
    policy._source = Path(name)
    return policy


def _too_big(size: int, limit: int) -> str:
    return (
        f"the file is {size:,} bytes, over the limit of {limit:,} for a policy"
        " (REOPTD_POLICY_MAX_BYTES)"
    )


def _decode(raw: bytes, name: str) -> str:
    """The file's text: UTF-8 (a BOM is allowed), or a ``PolicyError`` saying what it is."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE)):
        raise PolicyError(name, [f"{name}: the file is UTF-16/32 text; save it as UTF-8"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        what = "binary data" if b"\0" in raw[:8192] else "text in another encoding"
        raise PolicyError(
            name,
            [
                f"{name}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}):"
                f" a policy is UTF-8 text, this looks like {what}"
            ],
        ) from None
    if "\0" in text:
        raise PolicyError(name, [f"{name}: the file holds NUL bytes: a policy is text, not binary"])
    return text


class _Refused(yaml.YAMLError):
    """A YAML document refused by the limits of ``_BoundedLoader``, at ``mark``, in ``field``."""

    def __init__(self, mark: Mark | None, field: str, problem: str) -> None:
        super().__init__(problem)
        self.mark, self.field, self.problem = mark, field, problem


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only: no Python objects), with limits: collections
    nest at most ``MAX_DEPTH`` deep (so a deep ``[[[...]]]`` never reaches Python's recursion
    limit), an alias may not refer to a node that contains it, and the document holds at most
    ``MAX_NODES`` values with aliases expanded (so a kilobyte "billion laughs" is refused
    before anything is built from it)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str] = []
        self._sizes: dict[int, int] = {}  # id(node) -> values in it, aliases expanded
        self._fields: dict[int, str] = {}  # id(node) -> where it is (first place)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # a scalar YAML resolves, Python cannot build
            field = self._fields.get(id(node), "(value)")
            raise _Refused(node.start_mark, field, f"value cannot be read: {exc}") from None

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        part = _part(parent, index)
        if part is not None:
            self._path.append(part)
        try:
            return self._compose(parent, index)
        finally:
            if part is not None:
                self._path.pop()

    def _compose(self, parent: Node | None, index: Any) -> Node | None:
        mark = self.peek_event().start_mark
        if self.check_event(AliasEvent):
            anchor = self.peek_event().anchor
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:
                raise _Refused(mark, self._field, f"alias *{anchor} refers to a node containing it")
            return node
        if len(self._path) > MAX_DEPTH:
            raise _Refused(mark, self._field, f"nested more than {MAX_DEPTH} levels deep")
        node = super().compose_node(parent, index)
        if isinstance(node, SequenceNode):
            children: list[Node] = node.value
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        size = 1 + sum(self._sizes[id(child)] for child in children)
        if size > MAX_NODES:
            raise _Refused(
                mark,
                self._field,
                f"holds more than {MAX_NODES:,} values once its aliases are expanded"
                " (an alias bomb?)",
            )
        self._sizes[id(node)] = size
        self._fields[id(node)] = self._field
        return node

    @property
    def _field(self) -> str:
        path = self._path if len(self._path) <= 8 else [*self._path[:6], "…", self._path[-1]]
        return ".".join(path) or "(top level)"


def _part(parent: Node | None, index: Any) -> str | None:
    """The path element of a node composed under ``parent`` (a key's name, a list index)."""
    if isinstance(parent, SequenceNode):
        return str(index)
    if isinstance(parent, MappingNode):
        if isinstance(index, ScalarNode):
            return str(index.value)[:40]
        return "(key)" if index is None else "?"
    return None


def _read_yaml(text: str) -> tuple[Node | None, Any]:
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        return node, None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


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
        except Exception as exc:  # a bug of ours must not stop the other files either
            problem = f"{file}: cannot be read: {type(exc).__name__}: {exc}"
            errors.append(PolicyError(str(file), [problem]))
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
