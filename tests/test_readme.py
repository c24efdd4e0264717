"""The README is what a new user follows: its Markdown tables render as tables, the Commands
table names every command of the CLI once with flags it really has, and the ingest example
posts rows a shipped policy accepts."""

from __future__ import annotations

import codecs
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
from markdown_it import MarkdownIt

from reoptd.cli import app

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])\b")


def _tables() -> dict[str, list[list[str]]]:
    """Every table of the README by the heading above it: rows of cells (inline Markdown)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(README)
    tables: dict[str, list[list[str]]] = {}
    heading, rows, row = "", None, None
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            heading = tokens[i + 1].content
        elif token.type == "table_open":
            rows = tables.setdefault(heading, [])
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and row is not None:
            row.append(token.content)
        elif token.type == "tr_close" and rows is not None and row is not None:
            rows.append(row)
            row = None
        elif token.type == "table_close":
            rows = None
    return tables


def test_the_examples_are_counted_right() -> None:
    numbers = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    match = re.search(r"(\w+) commented examples live in", README)
    assert match is not None
    shipped = sorted(p.name for p in (ROOT / "policies").glob("*.yaml"))
    assert numbers.index(match[1].lower()) + 1 == len(shipped)
    for name in shipped:
        assert f"policies/{name}" in README, name


def _commands() -> dict[str, Any]:
    """Each leaf command of the app by its path (`models show`) with its click object."""
    found: dict[str, Any] = {}

    def walk(command: Any, path: list[str]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return found


def _flags(command: Any) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def test_no_table_is_split_into_a_paragraph() -> None:
    """A blank line inside a table leaves its tail as a paragraph of `|` text."""
    tokens = MarkdownIt("commonmark").enable("table").parse(README)
    stray = [t.content for t in tokens if t.type == "inline" and t.content.startswith("|")]
    assert stray == []


def test_the_commands_table_names_each_command_once_with_real_flags() -> None:
    rows = _tables()["Commands"]
    assert rows[0] == ["command", "what it does"]
    commands = _commands()
    seen: list[str] = []
    for cell, _what in rows[1:]:
        match = re.fullmatch(r"`reoptd ([a-z]+(?: [a-z]+)?)\b.*`", cell)
        assert match, cell
        words = match.group(1).split()
        name = next((" ".join(words[:n]) for n in (2, 1) if " ".join(words[:n]) in commands), None)
        assert name is not None, f"{cell}: no such command"
        seen.append(name)
        shown = set(FLAG.findall(cell))
        unknown = shown - _flags(commands[name])
        assert not unknown, f"{cell}: `reoptd {name}` has no {sorted(unknown)}"
    assert sorted(seen) == sorted(commands), "each command once"


def _ingest_calls() -> list[tuple[str, str, str]]:
    """(path, content type, body) of each `curl` of the README's ingestion example."""
    block = next(b for b in re.findall(r"```bash\n(.*?)```", README, re.S) if "/ingest/" in b)
    commands, pending = [], ""
    for line in block.replace("\\\n", " ").splitlines():
        pending += line + "\n"
        try:  # a command ends where its quotes are closed
            commands.append(shlex.split(pending))
        except ValueError:
            continue
        pending = ""
    calls = []
    for words in commands:
        if not words or words[0] != "curl":
            continue
        url = next(w for w in words if w.startswith("http://"))
        kind = next((w.split(": ")[1] for w in words if w.startswith("Content-Type")), "")
        body = ""
        for flag in ("-d", "--data-binary"):
            if flag in words:
                body = words[words.index(flag) + 1]
                if body.startswith("$"):  # bash's $'...' quoting
                    body = codecs.decode(body[1:], "unicode_escape")
        calls.append((url.removeprefix("http://127.0.0.1:8464"), kind, body))
    return calls


@pytest.mark.parametrize("name", ["churn-api-manual.yaml"])
def test_the_ingest_example_posts_rows_a_shipped_policy_accepts(tmp_path: Path, name: str) -> None:
    from fastapi.testclient import TestClient

    from reoptd.api import create_app
    from reoptd.clock import SimulatedClock
    from reoptd.data import demo
    from reoptd.policy import load_policy
    from reoptd.store.sql import SqlStore

    assert f"policies/{name}" in README
    calls = [c for c in _ingest_calls() if "/ingest/" in c[0]]
    assert [c[0].rsplit("/", 1)[1] for c in calls] == ["predictions", "labels"]
    registry = SqlStore(f"sqlite:///{tmp_path}/r.db", f"{tmp_path}/a")
    try:
        policy = load_policy(ROOT / "policies" / name)
        api = create_app(registry, [policy], SimulatedClock(demo.START), token="t" * 32)
        with TestClient(api) as http:
            for path, kind, body in calls:
                answer = http.post(
                    path,
                    content=body,
                    headers={"Authorization": f"Bearer {'t' * 32}", "Content-Type": kind},
                )
                assert answer.status_code == 200, (path, answer.text)
    finally:
        registry.close()
