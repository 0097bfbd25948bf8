"""Optional API keys, checked in front of everything (the raw /classify endpoint included).

- `SLIMTEXT_API_KEYS`: when set, inference (/classify, /v2/models/...), /models and any other route
  need one of these keys (or an admin key). Unset: those routes are open, as before.
- `SLIMTEXT_ADMIN_KEYS`: when set, /metrics needs one of these, and only these unlock the admin view of
  /models (training config, library versions, full error messages). Unset: /metrics needs an API key when
  API keys are set (it names every model, its kind and bytes, as /models does), else it is open; and
  nobody gets the admin view. `SLIMTEXT_METRICS_PUBLIC=true` opens /metrics whatever the keys (a scraper on
  a private network). The model repository API (/v2/repository/...: index, load, unload) needs an
  admin key when admin keys are set, else it is an inference route.
- Health probes (/health/*, /v2/health/*, /v2), the model page (/ and /static/*, no data in them) and, when
  enabled, the docs (with their /docs-static/* assets) stay public.

A key travels as `Authorization: Bearer <key>` or `X-API-Key: <key>`. It is compared with
hmac.compare_digest against every configured key (no early exit, so the time does not say which
key or how much of it matched). A refusal is a 401 JSON error with `WWW-Authenticate: Bearer`
(403 when a valid inference key asks for an admin route).
"""

from __future__ import annotations

import hmac
import logging

from service.errors import error_body

log = logging.getLogger("slimtext.auth")

PUBLIC_PREFIXES = ("/health/", "/v2/health/", "/static/")  # /static/: the model page's script and stylesheet
PUBLIC_PATHS = frozenset({"/v2", "/"})  # "/": the model page, no data in it (it reads /stats with the key)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
DOCS_PREFIXES = ("/docs-static/",)  # Swagger UI / ReDoc assets (service/docs.py)
ADMIN_PATHS = frozenset({"/metrics"})
ADMIN_PREFIXES = ("/v2/repository/",)  # the model repository API: index, load, unload
ADMIN_STATE = "slimtext_admin"  # scope["state"] key: the caller showed an admin key


def _matches(given: bytes, keys: tuple[bytes, ...]) -> bool:
    ok = False
    for key in keys:  # every key, every time
        ok |= hmac.compare_digest(given, key)
    return ok


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value:
            return value.strip()
    return None


class AuthGuard:
    def __init__(self, api_keys: tuple[str, ...], admin_keys: tuple[str, ...], docs_public: bool = False,
                 metrics_public: bool = False):
        self.api_keys = tuple(k.encode() for k in api_keys)
        self.admin_keys = tuple(k.encode() for k in admin_keys)
        self.public = (PUBLIC_PATHS | (DOCS_PATHS if docs_public else frozenset())
                       | (ADMIN_PATHS if metrics_public else frozenset()))
        self.public_prefixes = PUBLIC_PREFIXES + (DOCS_PREFIXES if docs_public else ())

    @property
    def active(self) -> bool:
        return bool(self.api_keys or self.admin_keys)

    def inference_allowed(self, given: bytes | None) -> bool:
        """An inference call (no admin route) may go on: no API keys configured, or one of them (or an admin key)."""
        if not self.api_keys:
            return True
        return given is not None and (_matches(given, self.api_keys)
                                      or bool(self.admin_keys) and _matches(given, self.admin_keys))

    def admin_allowed(self, given: bytes | None) -> bool:
        """An admin call may go on: no admin keys configured, or one of them."""
        if not self.admin_keys:
            return True
        return given is not None and _matches(given, self.admin_keys)

    async def allow(self, scope, send) -> bool:
        """True when the request may go on; otherwise the 401/403 has been sent."""
        path = scope["path"]
        if path in self.public or path.startswith(self.public_prefixes):
            return True
        given = presented_key(scope["headers"])
        is_admin = given is not None and bool(self.admin_keys) and _matches(given, self.admin_keys)
        if is_admin:
            scope.setdefault("state", {})[ADMIN_STATE] = True
            return True
        # with admin keys, /metrics and the repository API need one; without, an inference key (below) as /models
        if self.admin_keys and (path in ADMIN_PATHS or path.startswith(ADMIN_PREFIXES)):
            if given is not None and self.api_keys and _matches(given, self.api_keys):
                await _refuse(send, 403, "forbidden", "this route needs an admin key")
                return False
            await _refuse(send, 401, "unauthorized", "missing or invalid admin key")
            return False
        if self.inference_allowed(given):  # (an admin key was already let through above)
            return True
        await _refuse(send, 401, "unauthorized",
                      "missing or invalid API key (send 'Authorization: Bearer <key>' or 'X-API-Key: <key>')")
        return False


class ApiKeys:
    """The key check as an ASGI wrapper in front of every HTTP route (the raw /classify endpoint included)."""

    def __init__(self, app, guard: AuthGuard):
        self.app, self.guard = app, guard

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.guard.active and not await self.guard.allow(scope, send):
            return
        await self.app(scope, receive, send)


async def _refuse(send, status: int, error: str, message: str) -> None:
    body = error_body(error, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="slimtext"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def is_admin(scope) -> bool:
    return bool(scope.get("state", {}).get(ADMIN_STATE))
