"""The service serves its stage's view of the contract at /openapi.json, and Swagger UI for it at /docs."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from common import contract

METHODS = ("get", "put", "post", "delete", "patch")
# CHROMIUM names another build (e.g. chromium-browser); Debian's package installs /usr/bin/chromium.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def rendered_block_id(operation) -> str:
    """The id Swagger UI gives an operation's block: operations-<first tag>-<operationId>."""
    return f'id="operations-{operation["tags"][0]}-{operation["operationId"]}"'


class _Assets(HTMLParser):
    """Collects the URLs a page loads (scripts, styles, icons, images)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("script", "img") and attributes.get("src"):
            self.urls.append(attributes["src"])
        if tag == "link" and attributes.get("href"):
            self.urls.append(attributes["href"])


@pytest.mark.check("S0-AC1")
def test_service_serves_its_stages_view_of_the_contract(api, stage):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    served, expected = response.json(), contract.openapi_for_stage(stage.number)
    extra = {f"{m.upper()} {p}" for m, p, _ in operations(served)} - {f"{m.upper()} {p}" for m, p, _ in operations(expected)}
    assert not extra, f"stage {stage.number} documents operations it does not serve yet: {sorted(extra)}"
    assert served == expected, f"/openapi.json is not stage {stage.number}'s view of the contract"


@pytest.mark.check("S0-AC11")
def test_docs_page_and_everything_it_loads_are_served_by_the_service(api):
    page = api.get("/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "/openapi.json" in page.text, "the page does not load the contract the service serves"
    assets = _Assets()
    assets.feed(page.text)
    assert assets.urls, "the page loads no scripts or styles"
    page_url = api.base_url + "/docs"
    for url in assets.urls:
        absolute = urljoin(page_url, url)
        assert urlsplit(absolute).netloc == urlsplit(page_url).netloc, f"the page loads {url} from elsewhere (offline?)"
        asset = api.get(absolute)
        assert asset.status_code == 200, f"{url} answered {asset.status_code}"


@pytest.mark.check("S0-AC11")
def test_docs_page_renders_every_operation_of_the_stages_view_in_a_browser(service, stage):
    if not shutil.which(CHROMIUM):
        pytest.skip(f"not gradable here: the rendered page needs headless Chromium ({CHROMIUM}); "
                    "install Debian's chromium package")
    view = contract.openapi_for_stage(stage.number)
    expected = {rendered_block_id(op): f"{m.upper()} {p}" for m, p, op in operations(view)}
    later = {rendered_block_id(op): f"{m.upper()} {p}" for m, p, op in operations(contract.openapi())
             if rendered_block_id(op) not in expected}
    # A deep link opens one operation, which shows "Try it out" against the running service; the page
    # around it lists every operation, so one render (one Chromium start) shows both.
    _, _, first = next(operations(view))
    dom = _render(f"{service.url}/docs#/{first['tags'][0]}/{first['operationId']}",
                  until=lambda dom: "try-out__btn" in dom and all(block in dom for block in expected))
    missing = sorted(name for block, name in expected.items() if block not in dom)
    assert not missing, f"/docs did not render {missing}"
    shown = sorted(name for block, name in later.items() if block in dom)
    assert not shown, f"/docs shows operations stage {stage.number} does not serve: {shown}"
    assert 'class="btn authorize' in dom, "no Authorize button for the bearer token"
    assert "try-out__btn" in dom, f"/docs offers no Try it out for {first['operationId']}"


def _render(url: str, *, until, seconds: float = 60) -> str:
    """The page's DOM after its scripts ran, in headless Chromium that can reach only the service;
    dumped again until `until(dom)` holds or the time is up (a slow machine may need a second pass)."""
    host = urlsplit(url).hostname
    deadline = time.monotonic() + seconds
    dom = ""
    while time.monotonic() < deadline:
        with tempfile.TemporaryDirectory() as profile:
            try:
                dom = subprocess.run(
                    [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                     # Every other host fails to resolve: the page must render from the service alone.
                     f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {host}",
                     "--virtual-time-budget=15000", "--dump-dom", url],
                    capture_output=True, text=True, timeout=max(5.0, deadline - time.monotonic())).stdout
            except subprocess.TimeoutExpired:
                continue
        if until(dom):
            break
    return dom
