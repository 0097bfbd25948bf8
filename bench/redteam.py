"""`make redteam`: attack the production command (`python -m service`) on loopback; docs/reliability.md.

    python -m bench.redteam [--models-dir models] [--before-repo PATH] [--out docs/reliability.md]

Each case starts a fresh server (one uvicorn worker, defaults), runs one attack from a separate client
process for a bounded time while this process probes GET /health/live every 0.25 s (a fresh connection
each time, 3 s timeout) and samples the server's RSS every 50 ms, then stops the server. Everything
is on 127.0.0.1 and every case has a time cap, so the run ends by itself (about 2 minutes per checkout).
`--before-repo` runs the same cases against another checkout (e.g. `git worktree add /tmp/wt-before
main`) with that checkout's own `python -m service`, so the table reads case -> before -> after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import re
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench import redteam_bounds as rb
from bench.loop_bound import FILLERS, at_the_bound
from bench.server import LOOPBACK, ROOT, UvicornServer, free_port
from service.config import Settings

PROBE_EVERY_S, PROBE_TIMEOUT_S = 0.25, 3.0
HEAVY_TEXTS = ["!" * 4000] * 256  # max texts at 4,000 characters each: ~1 MB, under max_body_bytes
# just under the event loop's bound (fewer than offload_min_texts texts and offload_min_chars characters run on the
# loop): contractions, the costliest text per character measured (bench/loop_bound.py); 32 x 127 = 4,064 characters
ON_LOOP_TEXTS = at_the_bound(FILLERS["contractions"], 32, Settings.model_fields["offload_min_chars"].default)
MARK_START, MARK_END = "<!-- redteam:start -->", "<!-- redteam:end -->"


# ------------------------------------------------------------------ raw HTTP client (asyncio)

def post_bytes(body: bytes, path: str = "/classify") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader, with_retry_after: bool = False):
    """(status, server closes after it[, Retry-After seconds]); status 0 when the connection ended without one."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        return (0, True, 0.0) if with_retry_after else (0, True)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    status, close = int(lines[0].split()[1]), headers.get("connection", "").lower() == "close"
    try:
        await reader.readexactly(int(headers.get("content-length", "0")))
    except (asyncio.IncompleteReadError, ConnectionError):
        status, close = 0, True
    if with_retry_after:
        return status, close, float(headers.get("retry-after", "0") or 0)
    return status, close


async def _loop_requests(port: int, payload: bytes, until: float, stats: dict, backoff_s: float) -> None:
    """Keep-alive request loop on one connection (reconnecting when closed) until `until`."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(backoff_s)
            continue
        try:
            while time.monotonic() < until:
                writer.write(payload)
                await writer.drain()
                status, close, retry_after = await asyncio.wait_for(read_response(reader, True), 30)
                stats[str(status)] = stats.get(str(status), 0) + 1
                if status != 200:  # a heavy but well-behaved client: it honours Retry-After
                    await asyncio.sleep(max(backoff_s, retry_after))
                if close:
                    break
        except (TimeoutError, OSError):
            stats["socket_errors"] += 1
            await asyncio.sleep(backoff_s)
        finally:
            writer.close()


def load_requests(port: int, body: bytes, clients: int, seconds: float, backoff_s: float = 0.2) -> dict:
    """`clients` connections sending `body` back to back for `seconds` (runs in the client process); after a
    non-200 reply a client waits its Retry-After (at least `backoff_s`) before the next request."""
    async def run():
        stats = {"connect_errors": 0, "socket_errors": 0}
        until = time.monotonic() + seconds
        await asyncio.gather(*(_loop_requests(port, post_bytes(body), until, stats, backoff_s)
                               for _ in range(clients)))
        return stats
    return asyncio.run(run())


def load_header(port: int, total_bytes: int, seconds: float) -> dict:
    """One request whose single header grows to `total_bytes`; how far it got and what came back."""
    s = socket.create_connection((LOOPBACK, port))
    s.settimeout(1.0)
    s.sendall(b"GET /health/live HTTP/1.1\r\nHost: r\r\nX-Huge: ")
    chunk, sent, reply = b"a" * 65536, 0, b""
    until = time.monotonic() + seconds
    try:
        while sent < total_bytes and time.monotonic() < until:
            s.sendall(chunk)
            sent += len(chunk)
        if sent >= total_bytes:
            s.sendall(b"\r\n\r\n")
        reply = s.recv(200)
    except OSError:
        with contextlib.suppress(OSError):
            reply = s.recv(200)
    s.close()
    m = re.match(rb"HTTP/1\.1 (\d+)", reply)
    return {"status": int(m.group(1)) if m else 0, "sent_mb": sent / 1e6}


def load_stalled(port: int, conns: int, body_bytes: int, hold_s: float) -> dict:
    """`conns` connections each sending a head and all but the last byte of a `body_bytes` body, then stalling."""
    async def one(payload: bytes, stats: dict):
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, port)
            writer.write(payload[:-1])
            await asyncio.wait_for(writer.drain(), hold_s)
            status, _ = await asyncio.wait_for(read_response(reader), hold_s)
            stats[str(status)] = stats.get(str(status), 0) + 1
            writer.close()
        except (TimeoutError, OSError):
            stats["held"] = stats.get("held", 0) + 1  # still stalled at the end: the server kept it

    async def run():
        payload, stats = post_bytes(json.dumps({"texts": ["x" * (body_bytes - 20)]}).encode()), {}
        await asyncio.gather(*(one(payload, stats) for _ in range(conns)))
        return stats
    return asyncio.run(run())


def load_idle(port: int, idle: int, slow: int, seconds: float) -> dict:
    """`idle` connections that send nothing and `slow` ones sending one header byte a second."""
    async def one(slowloris: bool) -> bool:
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            return False
        until = time.monotonic() + seconds
        try:
            if slowloris:
                writer.write(b"GET /health/live HTTP/1.1\r\nHost: r\r\n")
            while time.monotonic() < until:
                if slowloris:
                    writer.write(b"x")
                    await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(4096), 1.0) == b"":
                        return True  # closed by the server
                except TimeoutError:
                    pass
        except OSError:
            return True
        finally:
            writer.close()
        return False

    async def run():
        closed = await asyncio.gather(*(one(i >= idle) for i in range(idle + slow)))
        return {"closed": sum(closed), "total": idle + slow}
    return asyncio.run(run())


def load_sigterm(port: int, pid: int, conns: int, before_s: float, seconds: float) -> dict:
    """`conns` keep-alive clients in a loop; SIGTERM after `before_s`; count requests written but unanswered."""
    async def one(stats: dict, until: float):
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            stats["refused"] += 1
            return
        payload = post_bytes(json.dumps({"texts": ["a gorgeous , witty , seductive movie ."]}).encode())
        try:
            while time.monotonic() < until:
                try:
                    writer.write(payload)
                    await writer.drain()
                except OSError:
                    return  # the server had closed: the request never left, it is not lost
                status, close = await asyncio.wait_for(read_response(reader), 30)
                if status == 0:
                    stats["lost"] += 1
                    return
                stats["answered"] += 1
                if close:
                    stats["closed_cleanly"] += 1
                    return
        except (TimeoutError, OSError):
            stats["lost"] += 1
        finally:
            writer.close()

    async def run():
        stats = {"lost": 0, "answered": 0, "closed_cleanly": 0, "refused": 0}
        until = time.monotonic() + seconds
        tasks = [asyncio.ensure_future(one(stats, until)) for _ in range(conns)]
        await asyncio.sleep(before_s)
        os.kill(pid, signal.SIGTERM)
        await asyncio.gather(*tasks)
        return stats
    return asyncio.run(run())


# ------------------------------------------------------------------ observers (this process)

class Probe(threading.Thread):
    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.latencies, self._halt = port, [], threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            t0 = time.monotonic()
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=PROBE_TIMEOUT_S) as s:
                    s.settimeout(max(0.01, PROBE_TIMEOUT_S - (time.monotonic() - t0)))
                    s.sendall(b"GET /health/live HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
                    ok = s.recv(64).startswith(b"HTTP/1.1 200")
                self.latencies.append(time.monotonic() - t0 if ok else PROBE_TIMEOUT_S)
            except OSError:
                self.latencies.append(PROBE_TIMEOUT_S)
            self._halt.wait(max(0.0, PROBE_EVERY_S - (time.monotonic() - t0)))

    def stop(self) -> dict:
        self._halt.set()
        self.join(PROBE_TIMEOUT_S + 1)
        lat = self.latencies
        return {"probes": len(lat), "probes_ok": sum(x < 1.0 for x in lat), "probe_max_s": max(lat, default=0.0),
                "probe_latencies": [round(x, 3) for x in lat]}


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self._halt = pid, 0, threading.Event()

    @staticmethod
    def rss_mb(pid: int) -> float:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return 0.0
        m = re.search(r"VmRSS:\s+(\d+)", text)  # none once the process has exited (a zombie)
        return int(m.group(1)) / 1024 if m else 0.0

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.rss_mb(self.pid))
            self._halt.wait(0.05)

    def stop(self) -> float:
        self._halt.set()
        self.join(1)
        return self.peak


# ------------------------------------------------------------------ cases

@dataclass
class Case:
    name: str
    what: str
    load: object  # function run in the client process: (port, **kwargs) -> dict
    kwargs: dict = field(default_factory=dict)
    needs_pid: bool = False
    env: dict = field(default_factory=dict)  # server settings for this case
    grpc: bool = False  # serve gRPC too; the load gets `port` = the gRPC port


API_KEY = "redteam-key-0123456789abcdef"


def cases(quick: bool) -> list[Case]:
    s = 0.5 if quick else 1.0
    heavy = json.dumps({"texts": HEAVY_TEXTS}).encode()
    return [
        Case("header_100mb", "one request with a 100 MB header", load_header,
             {"total_bytes": 100_000_000, "seconds": 30 * s}),
        Case("cpu_heavy_32", "32 clients sending 256 x 4,000-char texts (~1 MB) for 10 s", load_requests,
             {"body": heavy, "clients": 32, "seconds": 10 * s}),
        Case("stalled_400", "400 connections each stalled 1 byte before the end of a ~1 MiB body", load_stalled,
             {"conns": 400, "body_bytes": 1_040_000, "hold_s": 8 * s}),
        Case("conns_512", "512 connections sending ~1 MB CPU-heavy requests for 10 s", load_requests,
             {"body": heavy, "clients": 512, "seconds": 10 * s}),
        Case("on_loop_64", "64 clients looping the costliest request the event loop runs itself (32 texts, "
             f"{sum(map(len, ON_LOOP_TEXTS)):,} characters of contractions) for 10 s", load_requests,
             {"body": json.dumps({"texts": ON_LOOP_TEXTS}).encode(), "clients": 64, "seconds": 10 * s}),
        Case("idle_slow", "200 idle + 50 slow-header (1 byte/s) connections for 14 s", load_idle,
             {"idle": 200, "slow": 50, "seconds": 14}),
        Case("sigterm_64", "64 keep-alive clients in a loop, SIGTERM after 2 s", load_sigterm,
             {"conns": 64, "before_s": 2.0, "seconds": 20}, needs_pid=True),
        # issue 24: framing, error bodies, route body caps, gRPC, decoders
        Case("trailers_300mb", "8 clients in a loop: chunked POST /classify, then up to 300 MB of trailer fields",
             rb.load_stream, {"kinds": ["trailers"], "clients": 8, "seconds": 10 * s, "total_bytes": 300_000_000}),
        Case("trailers_health", "8 clients in a loop: GET /health/live with up to 200 MB of trailers",
             rb.load_stream, {"kinds": ["trailers_health"], "clients": 8, "seconds": 10 * s,
                              "total_bytes": 200_000_000}),
        Case("trailers_nokey", "API keys on: 8 clients, POST /classify without a key, up to 300 MB of trailers",
             rb.load_stream, {"kinds": ["trailers_nokey"], "clients": 8, "seconds": 10 * s,
                              "total_bytes": 300_000_000}, env={"SLIMTEXT_API_KEYS": API_KEY}),
        Case("chunk_ext", "8 clients in a loop: a chunk extension growing to 300 MB", rb.load_stream,
             {"kinds": ["chunk_ext"], "clients": 8, "seconds": 10 * s, "total_bytes": 300_000_000}),
        Case("validation_storm", "8 clients looping 1 MiB bodies of 500k integers (/classify and v2 JSON infer)",
             rb.load_validation_storm, {"clients": 8, "seconds": 10 * s}),
        Case("index_300mb", "8 clients in a loop: 300 MiB bodies to POST /v2/repository/index (Content-Length, "
             "chunked)", rb.load_stream, {"kinds": ["index_length", "index_chunked"], "clients": 8,
                                          "seconds": 10 * s, "total_bytes": 300 * 1_048_576}),
        Case("binary_bomb", "16 clients looping 1 MiB v2 binary bodies of 262k zero-length BYTES elements",
             rb.load_binary_bomb, {"clients": 16, "seconds": 10 * s}),
        Case("grpc_500", "gRPC: 500 concurrent valid 1 MB ModelInfer calls over 8 connections, in a loop",
             rb.load_grpc, {"kind": "valid_1mb", "concurrency": 500, "seconds": 10 * s}, grpc=True),
        Case("grpc_texts_bomb", "gRPC: 16 concurrent calls of 262k zero-length texts, in a loop", rb.load_grpc,
             {"kind": "texts_262k", "concurrency": 16, "seconds": 10 * s}, grpc=True),
        Case("grpc_inputs_bomb", "gRPC: 100 concurrent calls of 100k empty input tensors, in a loop", rb.load_grpc,
             {"kind": "inputs_100k", "concurrency": 100, "seconds": 10 * s}, grpc=True),
        Case("frame_matrix", f"every route x framing once ({len(rb.ROUTES)} routes x {len(rb.FRAMINGS)} framings, "
             "table below)", rb.frame_matrix),
    ]


def run_case(case: Case, repo: Path, python: str, models_dir: Path, pool: ProcessPoolExecutor,
             server_args: tuple[str, ...] = ()) -> dict:
    grpc_port = free_port() if case.grpc else None
    env = {**case.env, **({"SLIMTEXT_GRPC_PORT": str(grpc_port)} if grpc_port else {})}
    srv = UvicornServer(models_dir, python=python, cwd=repo, env=env, args=server_args)
    with srv:
        pid = srv.proc.pid
        base = RssSampler.rss_mb(pid)
        rss, probe = RssSampler(pid), Probe(srv.port)
        rss.start()
        probe.start()
        kwargs = {**case.kwargs, **({"pid": pid} if case.needs_pid else {})}
        t0 = time.monotonic()
        result = pool.submit(case.load, grpc_port or srv.port, **kwargs).result(timeout=180)
        wall = time.monotonic() - t0
        time.sleep(1.0)
        out = {**result, **probe.stop(), "rss_base_mb": base, "rss_peak_mb": rss.stop(),
               "rss_after_mb": RssSampler.rss_mb(pid), "wall_s": wall}
        if case.needs_pid:
            try:
                out["exit"] = srv.proc.wait(timeout=30)
            except Exception:
                out["exit"] = None
        else:
            out["alive"] = srv.proc.poll() is None
    return out


def verdict(name: str, r: dict, rss_limit_mb: float) -> tuple[str, bool]:
    """The headline figure of a case and whether it meets the goal."""
    probes = f"probes < 1 s: {r['probes_ok']}/{r['probes']} (max {r['probe_max_s']:.2f} s)"
    probes_ok = r["probes_ok"] == r["probes"]
    if name == "header_100mb":
        return (f"status {r['status'] or 'none'} after {r['sent_mb']:.1f} MB sent; {probes}; "
                f"RSS peak {r['rss_peak_mb']:.0f} MB", r["status"] == 431 and probes_ok)
    if name in ("cpu_heavy_32", "conns_512", "on_loop_64"):
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(r.items()) if k.isdigit() or k.endswith("errors"))
        ok = probes_ok and (name != "conns_512" or r["rss_peak_mb"] < rss_limit_mb)
        return f"{probes}; RSS peak {r['rss_peak_mb']:.0f} MB; responses {codes}", ok
    if name == "stalled_400":
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(r.items()) if k.isdigit() or k == "held")
        return f"{probes}; RSS peak {r['rss_peak_mb']:.0f} MB; {codes}", probes_ok and r["rss_peak_mb"] < rss_limit_mb
    if name == "idle_slow":
        return f"closed by the server: {r['closed']}/{r['total']}; {probes}", r["closed"] == r["total"]
    if name == "sigterm_64":
        return (f"lost {r['lost']}, answered {r['answered']}, closed cleanly {r['closed_cleanly']}, "
                f"exit {r['exit']}", r["lost"] == 0 and r["exit"] == 0)
    return bounds_verdict(name, r, probes, probes_ok, rss_limit_mb)


# the replies each issue-24 case may get (anything else, a 5xx or no reply, misses the goal)
# ("0": the connection closed before a status line came, once the server had stopped reading; UNAVAILABLE: a
# call refused at the HTTP/2 layer, REFUSED_STREAM past SLIMTEXT_GRPC_MAX_STREAMS streams on a connection)
SHED = {"RESOURCE_EXHAUSTED", "UNAVAILABLE"}
EXPECTED = {"trailers_300mb": {"431", "0"}, "trailers_health": {"431", "200", "0"},
            "trailers_nokey": {"401", "431", "0"}, "chunk_ext": {"431", "0"}, "validation_storm": {"422"},
            "index_300mb": {"413", "0"}, "binary_bomb": {"413"}, "grpc_500": {"OK", *SHED},
            "grpc_texts_bomb": SHED, "grpc_inputs_bomb": {"INVALID_ARGUMENT", *SHED}}
COUNTS = ("sent_bytes", "max_reply_bytes", "message_bytes", "connect_errors", "socket_errors")


def bounds_verdict(name: str, r: dict, probes: str, probes_ok: bool, rss_limit_mb: float) -> tuple[str, bool]:
    rss = f"RSS peak {r['rss_peak_mb']:.0f} MB, after {r.get('rss_after_mb', 0):.0f} MB"
    rss_ok = r["rss_peak_mb"] < rss_limit_mb and r.get("rss_after_mb", 0) < rss_limit_mb
    if name == "frame_matrix":
        cells = {k: v for k, v in r.items() if "|" in k}
        fives = [k for k, v in cells.items() if any(c.startswith("5") for c in v.split())]
        return (f"{len(cells)} cells, {len(fives)} with a 5xx; {probes}; {rss}",
                probes_ok and rss_ok and bool(cells) and not fives)
    replies = {k: v for k, v in r.items() if k not in COUNTS and type(v) is int and not k.startswith("probe")
               and not k.startswith("rss")}
    codes = ", ".join(f"{k}: {v}" for k, v in sorted(replies.items()))
    extra = ""
    if "sent_bytes" in r:
        extra = f"; {r['sent_bytes'] / 1e6:.1f} MB sent in all"
    if "max_reply_bytes" in r:
        extra += f"; largest reply {r['max_reply_bytes']:,} B"
    replies_ok = bool(replies) and set(replies) <= EXPECTED.get(name, set(replies))
    small_errors = r.get("max_reply_bytes", 0) < 4096
    return (f"{probes}; {rss}; replies {codes}{extra}", probes_ok and rss_ok and replies_ok and small_errors)


def run_all(repo: Path, python: str, models_dir: Path, quick: bool, only: list[str] | None,
            server_args: tuple[str, ...] = ()) -> dict[str, dict]:
    results = {}
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        for case in cases(quick):
            if only and case.name not in only:
                continue
            print(f"[{repo.name}] {case.name} ...", flush=True)
            results[case.name] = run_case(case, repo, python, models_dir, pool, server_args)
            print(f"[{repo.name}] {case.name}: {results[case.name]}", flush=True)
    return results


# ------------------------------------------------------------------ report

def render(after: dict, before: dict | None, rss_limit_mb: float) -> str:
    rows = ["| case | before | after | goal met (after) |", "|---|---|---|---|"]
    for case in cases(False):
        if case.name not in after:
            continue
        a, ok = verdict(case.name, after[case.name], rss_limit_mb)
        b = verdict(case.name, before[case.name], rss_limit_mb)[0] if before and case.name in before else "-"
        rows.append(f"| **{case.name}**: {case.what} | {b} | {a} | {'yes' if ok else '**no**'} |")
    matrix = matrix_table(after.get("frame_matrix"), (before or {}).get("frame_matrix"))
    return "\n".join([
        MARK_START, "# Reliability: red team", "",
        "Generated by `make redteam` (`python -m bench.redteam`): each case starts a fresh `python -m service` "
        "(one uvicorn worker, defaults) on 127.0.0.1, attacks it from a separate client process for a bounded "
        f"time, probes `GET /health/live` every {PROBE_EVERY_S} s on a fresh connection ({PROBE_TIMEOUT_S:.0f} s "
        "timeout, counted as a miss) and samples the server's RSS every 50 ms. "
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs shared by the client, the server and "
        "other jobs. *Before* is the checkout without the hardening (plain httptools protocol, no admission "
        "control, CPU work on the event loop); *after* is this one. "
        f"Goals: every probe < 1 s, RSS peak < {rss_limit_mb:.0f} MB, idle/slow connections closed, "
        "nothing lost on SIGTERM.", "", *rows, "", *matrix, MARK_END, ""])


def matrix_table(after: dict | None, before: dict | None) -> list[str]:
    """frame_matrix: one row per route, one column per framing; each cell the statuses seen (before -> after)."""
    if not after:
        return []
    lines = ["## Every route x every framing (`frame_matrix`)", "",
             "One connection per cell; the statuses in order (`close`: the server said Connection: close; "
             "`reset`: it closed with no reply; `timeout`: no reply in 10 s). Bodies of 2 MiB are over every "
             "route's cap (1 MiB inference, 16 KiB the rest); the trailers are 16 fields of 64 KiB. gRPC: the "
             "grpc_* rows above, and every RPC has a 1 MiB message cap and the same admission slots.", "",
             "| route | " + " | ".join(rb.FRAMINGS) + " |", "|---|" + "---|" * len(rb.FRAMINGS)]
    for method, path in rb.ROUTES:
        cells = []
        for framing in rb.FRAMINGS:
            key = f"{method} {path} | {framing}"
            a = after.get(key, "-")
            cells.append(f"{before[key]} → {a}" if before and key in before else a)
        lines.append(f"| {method} {path} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def splice(path: Path, section: str) -> None:
    """Replace the red-team section of `path` in place (or put it first), keeping the rest (the soak)."""
    old = path.read_text() if path.exists() else ""
    if MARK_START in old and MARK_END in old:
        head, rest = old.split(MARK_START, 1)
        path.write_text(head + section.rstrip("\n") + rest.split(MARK_END, 1)[1])
    else:
        path.write_text(section + "\n" + old)


def keep_section(path: Path) -> str:
    """The red-team section of `path`, for writers that regenerate the rest of the file (bench.soak)."""
    text = path.read_text() if path.exists() else ""
    if MARK_START not in text or MARK_END not in text:
        return ""
    return "\n" + MARK_START + text.split(MARK_START, 1)[1].split(MARK_END, 1)[0] + MARK_END + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.redteam", description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--before-repo", type=Path, help="another checkout to attack the same way (its .venv if any)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    p.add_argument("--rss-limit-mb", type=float, default=256.0)
    p.add_argument("--quick", action="store_true", help="halve the attack durations")
    p.add_argument("--only", nargs="*", help="case names to run")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--before-json", type=Path, help="reuse the 'before' results of an earlier --json file")
    p.add_argument("--before-args", default=None, help="'before' = this checkout started with these uvicorn "
                   "options, e.g. \"--http httptools\" (uvicorn's own protocol instead of service/protocol.py)")
    p.add_argument("--from-json", type=Path, help="run nothing: render the before and after of an earlier --json file")
    args = p.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        return report(saved["after"], saved["before"], args)
    if not (args.models_dir / "sst2-dan-lowrank").is_dir() and not any(args.models_dir.glob("*/manifest.json")):
        print(f"no models under {args.models_dir}; run `make models` first", file=sys.stderr)
        return 1
    before = json.loads(args.before_json.read_text())["before"] if args.before_json else None
    if args.before_repo is not None:
        repo = args.before_repo.resolve()
        py = repo / ".venv" / "bin" / "python"
        before = run_all(repo, str(py) if py.exists() else sys.executable, args.models_dir, args.quick, args.only)
    elif args.before_args is not None:
        before = run_all(ROOT, sys.executable, args.models_dir, args.quick, args.only, tuple(args.before_args.split()))
    after = run_all(ROOT, sys.executable, args.models_dir, args.quick, args.only)
    if args.json:
        args.json.write_text(json.dumps({"before": before, "after": after}, indent=1))
    return report(after, before, args)


def report(after: dict, before: dict | None, args) -> int:
    section = render(after, before, args.rss_limit_mb)
    print(section)
    splice(args.out, section)
    failed = [n for n, r in after.items() if not verdict(n, r, args.rss_limit_mb)[1]]
    print(f"wrote {args.out}; " + (f"goals missed: {failed}" if failed else "all goals met"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
