"""Offline API docs: Swagger UI at /docs and ReDoc at /redoc with their JS/CSS served from the
installed `fastapi-offline` wheel (Swagger UI: Apache-2.0, ReDoc: MIT, shipped with their licences),
so the pages render with no network. FastAPI's own pages load the same files from a CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

STATIC_URL = "/docs-static"


def assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def install(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Replace FastAPI's CDN-based /docs and /redoc by offline ones. A no-op when the app publishes no
    OpenAPI schema (`openapi_url=None`, e.g. docs turned off by configuration)."""
    if app.openapi_url is None:
        return
    cdn_pages = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in cdn_pages]
    app.docs_url, app.redoc_url = docs_url, redoc_url
    openapi_url, title = app.openapi_url, app.title
    app.mount(STATIC_URL, StaticFiles(directory=assets_dir()), name="docs-static")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{openapi_url}", title=f"{title} - API docs",
                                   swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
                                   swagger_ui_parameters=app.swagger_ui_parameters)

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{openapi_url}", title=f"{title} - ReDoc",
                              redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png", with_google_fonts=False)
