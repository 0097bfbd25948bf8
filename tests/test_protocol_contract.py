"""service/protocol.py subclasses uvicorn's private HttpToolsProtocol: the header cap, the deadlines, the
chunked-framing bounds and the drain live in overrides of its internals. uvicorn is pinned to one minor
release range (pyproject.toml); this test fails on any release that changes what the overrides rely on, so
an upgrade cannot silently drop a protection. When it fails: read the new uvicorn code of the listed
methods, adjust service/protocol.py, run `make redteam` (all cases met), then update the hashes below."""

from __future__ import annotations

import hashlib
import inspect

from uvicorn.protocols.http import httptools_impl

from service.protocol import HardenedHttpToolsProtocol

# sha256 (first 16 hex digits) of uvicorn 0.55's source of every method the hardened protocol overrides or
# whose behaviour it depends on (on_url/on_header fill self.url/self.headers, which the head cap counts)
UVICORN_SOURCES = {
    "__init__": "4f08999410347141", "connection_made": "6efb565ff3d36b91", "connection_lost": "c91a4c9bf2e29c55",
    "data_received": "010a7ae59a5d3b1a", "on_body": "dba9c32aeba35b6a", "send_400_response": "ae5a4a3782b646fd",
    "on_message_begin": "96d377fdc7c2baef", "on_headers_complete": "1ea8589acfad92d8",
    "on_message_complete": "1fbad42dc31fc01f", "on_response_complete": "64e254f28e389e76",
    "shutdown": "d7351fa33f00d430", "on_url": "37be44e962b04ca8", "on_header": "1e86ebb6cea0458c",
}
CYCLE_INIT = "4d2f220910c33c12"  # RequestResponseCycle.__init__: more_body, response_started, disconnected, ...
CYCLE_FIELDS = ("more_body", "response_started", "response_complete", "disconnected", "message_event",
                "keep_alive", "body")


def _digest(obj) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def test_uvicorn_internals_the_hardened_protocol_overrides_are_unchanged():
    changed = {name: _digest(getattr(httptools_impl.HttpToolsProtocol, name)) for name in UVICORN_SOURCES
               if _digest(getattr(httptools_impl.HttpToolsProtocol, name)) != UVICORN_SOURCES[name]}
    assert not changed, f"uvicorn changed HttpToolsProtocol.{sorted(changed)}: re-check service/protocol.py"
    assert _digest(httptools_impl.RequestResponseCycle.__init__) == CYCLE_INIT, \
        "uvicorn changed RequestResponseCycle: re-check the fields service/protocol.py reads"
    source = inspect.getsource(httptools_impl.RequestResponseCycle.__init__)
    assert all(f"self.{field}" in source for field in CYCLE_FIELDS)


def test_every_override_is_listed_here():
    """A new override in service/protocol.py must be added to UVICORN_SOURCES (or be a new callback)."""
    overrides = {name for name, value in vars(HardenedHttpToolsProtocol).items()
                 if callable(value) and hasattr(httptools_impl.HttpToolsProtocol, name)}
    assert overrides <= set(UVICORN_SOURCES), sorted(overrides - set(UVICORN_SOURCES))


def test_connections_read_their_limits_from_the_lifespan_state():
    """create_app's lifespan yields the Limits under LIMITS_STATE; uvicorn passes that state to every
    connection's protocol as `app_state` (the attribute the hardened protocol reads)."""
    source = inspect.getsource(httptools_impl.HttpToolsProtocol.__init__)
    assert "self.app_state = app_state" in source


# service/supervisor.py (one socket per worker): uvicorn.main.run() builds its server from the module's `Server`
# name and runs it with no sockets for one worker; Server.run / startup take and listen on the sockets given
SUPERVISOR_SOURCES = {"run": "68c3e6c9039f072f", "Server.run": "239e0133d4307e38",
                      "Server.startup": "2aa1d70a244bfcf2"}


def test_uvicorn_internals_the_supervisor_relies_on_are_unchanged():
    import importlib

    import uvicorn.server

    main = importlib.import_module("uvicorn.main")
    found = {"run": _digest(main.run), "Server.run": _digest(uvicorn.server.Server.run),
             "Server.startup": _digest(uvicorn.server.Server.startup)}
    assert found == SUPERVISOR_SOURCES, "uvicorn changed what service/supervisor.py patches: re-check it"
    assert "server = Server(config=config)" in inspect.getsource(main.run)
    assert {"host", "port", "uds", "fd", "reload"} <= {p.name for p in main.main.params}
