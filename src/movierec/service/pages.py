"""What the app serves as HTML: the web page at / (its files under /static), the run's
report at /report, and the API docs at /docs (Swagger UI from local files, no CDN).

The page and the report share one strict policy: nothing but this server's own files
loads. Links to IMDb and TMDB are plain navigation, which the policy does not restrict.
The report is one self-contained file whose CSS is inline: its own ``<style>`` elements
are admitted by their sha256, and no other inline style, nor any script, may run.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

WEB_DIR = Path(__file__).with_name("web")
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.IGNORECASE | re.DOTALL)


def report_headers(report: bytes) -> dict[str, str]:
    """``PAGE_HEADERS``, the policy also admitting the report's own ``<style>`` elements."""
    styles = _STYLE.findall(report.decode("utf-8", errors="replace"))
    if not styles:
        return PAGE_HEADERS
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in dict.fromkeys(styles)
    )
    csp = f"{PAGE_HEADERS['Content-Security-Policy']}; style-src 'self' {hashes}"
    return {**PAGE_HEADERS, "Content-Security-Policy": csp}


def mount_pages(app: FastAPI, report: bytes | None) -> None:
    """/report (404 JSON without a report), then the page and the docs (when ``web/``
    ships with the install)."""
    headers = report_headers(report) if report is not None else PAGE_HEADERS

    @app.get(
        "/report",
        tags=["service"],
        response_class=HTMLResponse,
        responses={200: {"content": {"text/html": {}}, "description": "The run's report"}},
    )
    async def run_report() -> HTMLResponse:
        """The run's report (report.html in the run directory, as loaded at start)."""
        if report is None:
            raise HTTPException(404, "this run has no report.html")
        return HTMLResponse(report, headers=headers)

    index = WEB_DIR / "index.html"
    if not index.is_file():
        return
    page = index.read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    async def home() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI over /openapi.json, its scripts served by this app (no CDN)."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="movierec API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )
