"""Each package's ``__all__`` is exactly its public surface (as httpx's
tests/test_exported_members.py): every listed name exists, and every public name the package's
``__init__`` defines, imports from its own modules or serves lazily is listed."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import pytest

import reoptd


def _packages() -> list[str]:
    found = ["reoptd"]
    for info in pkgutil.walk_packages(reoptd.__path__, "reoptd."):
        if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


def _public(name: str, package: types.ModuleType) -> set[str]:
    """What the package's ``__init__`` defines, imports from its own modules, or serves lazily
    (``dir()`` beyond its namespace); names it imports from elsewhere for its own use are not
    its surface (listing one in ``__all__`` re-exports it on purpose)."""
    assert package.__file__ is not None
    tree = ast.parse(Path(package.__file__).read_text())
    names: set[str] = set(dir(package)) - set(vars(package))

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.ImportFrom):
                own = node.level > 0 or (node.module or "").startswith(f"{name}.")
                if own:
                    names.update(a.asname or a.name for a in node.names)
            elif isinstance(node, ast.If):  # `if TYPE_CHECKING:` mirrors the lazy names
                visit(node.body)

    visit(tree.body)
    return {
        n
        for n in names
        if not n.startswith("_") and n != "annotations" and hasattr(package, n)  # not typing-only
    }


@pytest.mark.parametrize("name", _packages())
def test_all_lists_exactly_the_public_names(name: str) -> None:
    package = importlib.import_module(name)
    assert hasattr(package, "__all__"), f"{name} has no __all__"
    exported = list(package.__all__)
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ names what it does not have: {missing}"
    public = _public(name, package)
    exported = [n for n in exported if not n.startswith("__")]  # __version__ and the like
    assert public == set(exported), (
        f"{name}: public but not in __all__: {sorted(public - set(exported))}; "
        f"in __all__ but not public: {sorted(set(exported) - public)}"
    )


def test_every_package_is_checked() -> None:
    assert {"reoptd.store", "reoptd.cycle", "reoptd.cli", "reoptd.policy"} <= set(_packages())
