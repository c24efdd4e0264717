"""/docs and /redoc work without internet access: every script, stylesheet and icon they load
is served by the daemon itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _served import TOKEN, api_policy
from fastapi.testclient import TestClient

from reoptd.api import create_app
from reoptd.clock import SimulatedClock
from reoptd.data import demo
from reoptd.store.sql import SqlStore

ASSET = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_local_assets(tmp_path: Path, page: str) -> None:
    registry = SqlStore(f"sqlite:///{tmp_path}/r.db", f"{tmp_path}/a")
    try:
        app = create_app(registry, [api_policy()], SimulatedClock(demo.START), token=TOKEN)
        with TestClient(app) as http:
            html = http.get(page)
            assert html.status_code == 200
            assert "cdn" not in html.text.lower()
            assets = ASSET.findall(html.text)
            assert any(a.endswith(".js") for a in assets), assets
            for asset in assets:
                assert asset.startswith("/") and not asset.startswith("//"), asset
                assert http.get(asset).status_code == 200, asset
    finally:
        registry.close()
