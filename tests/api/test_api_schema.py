"""Schemathesis over the OpenAPI schema the real server publishes: no input gets a 5xx.

Requests carry the token, so the mutating routes (promotion, ingestion) are exercised past the
guard. Cases are drawn from schemathesis' strategy for the whole schema, valid and invalid,
for random model names and for the real model (so the routes get past the 404); the examples
are bounded so the run stays well under a minute.

(schemathesis' own pytest plugin, ``schemathesis.pytest.from_fixture``, does not work with
pytest 9 yet: it sets ``node._nodeid``. Hypothesis' ``@given`` over ``schema.as_strategy`` is
the same generation without it.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from _served import MODEL, TOKEN, Served, serve
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


@pytest.fixture(scope="module")
def fuzzed(api_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("fuzz") / "home"
    with serve(api_template, home, max_body_bytes=100_000, max_rows=200) as s:
        yield s


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize("name", [None, MODEL], ids=["any-name", "real-model"])
def test_no_input_makes_the_server_fail(
    fuzzed: Served, mode: schemathesis.GenerationMode, name: str | None
) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    operations = len(list(schema.get_all_operations()))
    assert operations == 13
    strategy = schema.as_strategy(mode, path_parameters={"name": name} if name else None)
    seen: dict[str, set[int]] = {}

    @given(case=strategy)
    @settings(
        max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def call(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error], timeout=30
        )
        seen.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)

    call()
    # most operations were reached (negative cases only exist where there is input to break)
    assert len(seen) >= (10 if mode is schemathesis.GenerationMode.POSITIVE else 3), seen
    assert all(code < 500 for codes in seen.values() for code in codes), seen
