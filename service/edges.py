"""The server's edges: small ASGI apps in front of FastAPI, composed in one declared list by `create_app`."""

from __future__ import annotations

from collections.abc import Callable

from service.errors import error_body

ASGIApp = Callable  # (scope, receive, send) -> Awaitable[None]
Edge = Callable[[ASGIApp], ASGIApp]  # wraps the app inside it; the wrapper keeps it as `.app`


def compose(edges: list[Edge], app: ASGIApp) -> ASGIApp:
    """`edges` outermost first: compose([a, b], app) == a(b(app))."""
    for edge in reversed(edges):
        app = edge(app)
    return app


class Endpoints:
    """Raw ASGI endpoints by exact path, served before FastAPI (no routing, dependency or middleware layers);
    another method on such a path gets 405 with `Allow`. Everything else goes to `app`."""

    def __init__(self, app: ASGIApp, endpoints: dict[tuple[str, str], ASGIApp]):
        self.app, self.endpoints = app, endpoints
        self.paths = {path: method for method, path in endpoints}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            endpoint = self.endpoints.get((scope["method"], scope["path"]))
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
            allowed = self.paths.get(scope["path"])
            if allowed is not None:
                body = error_body("http_error", "Method Not Allowed")
                await send({"type": "http.response.start", "status": 405, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"allow", allowed.encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
