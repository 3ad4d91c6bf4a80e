"""/docs and /redoc work with no internet: every asset they reference is served from /static
(no API key needed), byte-identical to the vendored npm file whose sha256 VENDORED.md records,
and each vendored package ships its licence."""

from __future__ import annotations

import hashlib
import re
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # Starlette 1.x suggests httpx2 for its TestClient; httpx is what the project pins.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.app import create_app
from api.docs import STATIC_DIR
from core.config import Settings

VENDOR_DIR = STATIC_DIR / "vendor"
LICENSES_DIR = VENDOR_DIR / "licenses"
# The URLs set in the inline script: `url: '/openapi.json'`, `oauth2RedirectUrl: ... + '/x'`.
JS_URL = re.compile(r"""\w*[uU]rl\s*:\s*(?:window\.location\.origin\s*\+\s*)?['"]([^'"]*)['"]""")
ABSOLUTE = re.compile(r"(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    data_dir = tmp_path_factory.mktemp("offline-docs")
    return TestClient(create_app(Settings(database_url="sqlite://", data_dir=data_dir)))


class _Urls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url") and v is not None]


def page_urls(html: str) -> list[str]:
    parser = _Urls()
    parser.feed(html)
    return parser.urls + JS_URL.findall(html)


def vendored() -> dict[str, tuple[str, str, str]]:
    """VENDORED.md's file table: file name -> (npm package, version, sha256)."""
    rows: dict[str, tuple[str, str, str]] = {}
    for line in (VENDOR_DIR / "VENDORED.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[0-9a-f]{64}", cells[4]):
            rows[cells[0]] = (cells[1], cells[2], cells[4])
    return rows


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/docs",
            {
                "/static/vendor/swagger-ui-bundle.js",
                "/static/vendor/swagger-ui.css",
                "/static/favicon.svg",
                "/openapi.json",
                "/docs/oauth2-redirect",
            },
        ),
        ("/redoc", {"/static/vendor/redoc.standalone.js", "/static/favicon.svg", "/openapi.json"}),
    ],
)
def test_doc_page_references_only_local_assets(
    client: TestClient, path: str, expected: set[str]
) -> None:
    response = client.get(path)  # no Authorization header
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "img-src 'self' data:" in response.headers["content-security-policy"]
    html = response.text
    assert "http://" not in html and "https://" not in html, "a URL to another host"
    assert "fonts.googleapis" not in html
    urls = page_urls(html)
    assert expected <= set(urls), f"missing from {path}: {expected - set(urls)}"
    for url in urls:
        assert not ABSOLUTE.match(url), f"{path} references {url!r}, not on this server"
        assert url.startswith("/"), url

    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, f"{path} -> {url}: {asset.status_code}"
        if url.startswith("/static/"):
            suffix = Path(url).suffix
            assert CONTENT_TYPES[suffix] in asset.headers["content-type"], (url, asset.headers)
            assert len(asset.content) >= (150 if suffix == ".svg" else 1000), url
            assert asset.content == (STATIC_DIR / url.removeprefix("/static/")).read_bytes()
    assert client.get("/openapi.json").json()["info"]["title"] == "Descent"


def test_oauth2_redirect_page_is_local(client: TestClient) -> None:
    response = client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "<script" in response.text
    assert "http://" not in response.text and "https://" not in response.text
    assert not [u for u in page_urls(response.text) if ABSOLUTE.match(u)]


def test_api_still_needs_a_key(client: TestClient) -> None:
    # The pages above answered without a key because they are outside /v1, not because the
    # edge lets everything through.
    assert client.get("/v1/runs").status_code == 401


def test_vendored_files_match_vendored_md(client: TestClient) -> None:
    table = vendored()
    on_disk = {p.name for p in VENDOR_DIR.iterdir() if p.is_file() and p.name != "VENDORED.md"}
    assert set(table) == on_disk
    assert {"htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css"} <= on_disk  # the dashboard's
    for name, (package, version, sha256) in table.items():
        content = (VENDOR_DIR / name).read_bytes()
        assert hashlib.sha256(content).hexdigest() == sha256, f"{name} differs from {package}"
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), (name, version)
        served = client.get(f"/static/vendor/{name}")
        assert served.status_code == 200
        assert served.content == content
        assert CONTENT_TYPES[Path(name).suffix] in served.headers["content-type"]


def test_every_vendored_package_has_its_licence() -> None:
    assert all(p.is_file() for p in LICENSES_DIR.iterdir()), "licenses/ must stay flat"
    assert [p.name for p in VENDOR_DIR.iterdir() if p.is_dir()] == ["licenses"]
    packages = {package for package, _, _ in vendored().values()}
    assert packages == {"htmx.org", "uplot", "swagger-ui-dist", "redoc"}
    for package in packages:
        licence = LICENSES_DIR / f"{package}-LICENSE.txt"
        assert licence.is_file(), f"no licence for {package}"
        text = licence.read_text()
        assert len(text) > 300 and re.search(r"licen[cs]e|permission", text, re.IGNORECASE)
