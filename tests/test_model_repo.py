"""Many models per server (service/registry/), against a real uvicorn on loopback: versions and an explicit
default, the repository API (index, load, unload; admin-protected), atomic swaps under load, lazy loading under
a memory budget with LRU eviction, and loading once for concurrent first requests."""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server

TEXT = "a gorgeous , witty , seductive movie ."
ADMIN_KEY = "admin-key-abcdefghijklmn"
V2 = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [TEXT]}]}


def copy_model(src: Path, dst: Path, name: str) -> Path:
    """A model folder under another name (the manifest's name follows; model.onnx and its sha256 are unchanged)."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    (dst / "manifest.json").write_text(json.dumps({**manifest, "name": name}))
    return dst


def classify(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/classify", json={"texts": [TEXT], **body}, timeout=30)


def index(url: str, headers: dict | None = None) -> dict[tuple[str, str], dict]:
    r = httpx.post(f"{url}/v2/repository/index", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return {(m["name"], m["version"]): m for m in r.json()}


@pytest.fixture
def repo(quick_run, tmp_path) -> Path:
    """`flat` (a folder as `make run` writes it: version 1), `multi/1` (lowrank) and `multi/2` (int8),
    `other`; aliases.json names `multi` the default and `sentiment` an alias of `flat`."""
    src = quick_run[0]
    root = tmp_path / "models"
    root.mkdir()
    copy_model(src / "sst2-dan-lowrank", root / "flat", "flat")
    copy_model(src / "sst2-dan-lowrank", root / "multi" / "1", "multi")
    copy_model(src / "sst2-dan-int8", root / "multi" / "2", "multi")
    copy_model(src / "sst2-dan-full", root / "other", "other")
    (root / "aliases.json").write_text(json.dumps({"default": "multi", "sentiment": "flat"}))
    return root


@pytest.fixture
def served(repo):
    srv = Server(repo, env={"SLIMTEXT_ADMIN_KEYS": ADMIN_KEY})
    srv.wait_ready()
    yield srv
    srv.stop()


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def test_versions_aliases_and_an_explicit_default(served, repo):
    url = served.url
    r = classify(url)
    assert r.status_code == 200 and (r.json()["model"], r.json()["version"]) == ("multi", "2")  # highest version
    assert classify(url, model="multi", version="1").json()["version"] == "1"
    assert classify(url, model="sentiment").json()["model"] == "flat"  # an alias
    assert classify(url, model="flat").json()["version"] == "1"  # a flat folder is version 1
    v1 = httpx.post(f"{url}/v2/models/multi/versions/1/infer", timeout=30, json=V2)
    assert v1.status_code == 200 and v1.json()["model_version"] == "1"
    assert httpx.get(f"{url}/v2/models/multi", timeout=30).json()["versions"] == ["1", "2"]
    # unknown model / version: 404 naming it
    r = classify(url, model="nope")
    assert r.status_code == 404 and r.json()["error"] == "unknown_model" and "'nope'" in r.json()["message"]
    r = classify(url, model="multi", version="7")
    assert r.status_code == 404 and r.json()["error"] == "unknown_version"
    assert "'multi'" in r.json()["message"] and "'7'" in r.json()["message"]
    r = httpx.post(f"{url}/v2/models/multi/versions/7/infer", json=V2, timeout=30)
    assert r.status_code == 404 and r.json()["code"] == "unknown_version"
    # the manifest's sha256 is visible, and the choice of default is explained
    models = httpx.get(f"{url}/models", timeout=30).json()
    assert models["default"] == "multi" and "aliases.json" in models["default_reason"]
    sha = json.loads((repo / "multi" / "2" / "manifest.json").read_text())["sha256"]
    assert index(url, ADMIN)[("multi", "2")]["sha256"] == sha
    # a folder sorting first never becomes the default
    copy_model(repo / "flat", repo / "aaa-lowrank", "aaa-lowrank")
    assert index(url, ADMIN)[("aaa-lowrank", "1")]["state"] == "UNAVAILABLE"
    assert classify(url).json()["model"] == "multi"
    assert re.search(r"default model: multi \(chosen by aliases.json", served.output())


def test_default_from_the_environment_and_none(repo):
    (repo / "aliases.json").unlink()
    srv = Server(repo, env={"SLIMTEXT_DEFAULT_MODEL": "other"})
    try:
        srv.wait_ready()
        assert classify(srv.url).json()["model"] == "other"
    finally:
        log = srv.stop()
    assert "default model: other (chosen by SLIMTEXT_DEFAULT_MODEL)" in log
    srv = Server(repo)  # several models, nothing configured: no default rather than the first by name
    try:
        srv.wait_ready()
        r = classify(srv.url)
        assert r.status_code == 400 and r.json()["error"] == "no_default_model"
        assert classify(srv.url, model="flat").status_code == 200
    finally:
        log = srv.stop()
    assert "no default model" in log


def test_repository_api(served, repo, quick_run):
    url = served.url
    # admin-protected when admin keys are set
    assert httpx.post(f"{url}/v2/repository/index", timeout=10).status_code == 401
    assert httpx.post(f"{url}/v2/repository/models/flat/load", timeout=10).status_code == 401
    # every folder with its state; a new folder shows up as not loaded
    copy_model(quick_run[0] / "sst2-dan-lowrank", repo / "newcomer", "newcomer")
    idx = index(url, ADMIN)
    assert idx[("multi", "2")]["state"] == "READY" and idx[("multi", "2")]["default"]
    assert (idx[("newcomer", "1")]["state"], idx[("newcomer", "1")]["reason"]) == ("UNAVAILABLE", "not loaded")
    r = httpx.post(f"{url}/v2/repository/models/newcomer/load", headers=ADMIN, timeout=30)
    assert r.status_code == 200 and r.json()["state"] == "READY", r.text
    assert index(url, ADMIN)[("newcomer", "1")]["state"] == "READY"
    # unload: not served until loaded again; the default cannot be unloaded
    r = httpx.post(f"{url}/v2/repository/models/newcomer/unload", headers=ADMIN, timeout=30)
    assert r.status_code == 200
    assert index(url, ADMIN)[("newcomer", "1")]["reason"] == "unloaded"
    assert classify(url, model="newcomer").status_code == 503
    r = httpx.post(f"{url}/v2/repository/models/multi/unload", headers=ADMIN, timeout=30)
    assert r.status_code == 409 and r.json()["code"] == "default_model"
    assert httpx.post(f"{url}/v2/repository/models/nope/load", headers=ADMIN, timeout=30).status_code == 404
    # a corrupt new version: JSON naming the file and the reason, the old version keeps serving
    before = classify(url, model="flat").json()
    (repo / "flat" / "model.onnx").write_bytes(b"corrupt")
    r = httpx.post(f"{url}/v2/repository/models/flat/load", headers=ADMIN, timeout=30)
    assert r.status_code == 400 and r.json()["code"] == "load_failed"
    assert "flat/model.onnx" in r.json()["error"] and "sha256" in r.json()["error"]
    assert str(repo) not in r.text  # no absolute path to clients
    after = classify(url, model="flat")
    assert after.status_code == 200 and after.json() == before
    assert index(url, ADMIN)[("flat", "1")]["state"] == "READY"


def test_swaps_under_load_fail_no_request(served, repo, quick_run):
    """Clients hammer `multi` while new versions are added and loaded, and version 2's folder is replaced and
    reloaded: every request is answered 200 by a whole model."""
    url, src = served.url, quick_run[0]
    stop, results, lock = threading.Event(), [], threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                r = c.post(f"{url}/classify", json={"texts": [TEXT, "dull and lifeless ."], "model": "multi"})
                body = r.json()
                ok = r.status_code == 200 and len(body["predictions"]) == 2
                with lock:
                    results.append((ok, body.get("version") if ok else r.text))

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    swaps = 0
    try:
        for k in range(3, 9):
            kind = "lowrank" if k % 2 else "int8"
            stage = repo / f"staging-{k}"
            copy_model(src / f"sst2-dan-{kind}", stage, "multi")
            if k % 3 == 0:  # replace the folder of the serving version in place (atomic renames), then reload
                top = max(int(p.name) for p in (repo / "multi").iterdir() if p.name.isdigit())
                (repo / "multi" / str(top)).rename(repo / f"old-{k}")
                stage.rename(repo / "multi" / str(top))
            else:
                stage.rename(repo / "multi" / str(k))
            r = httpx.post(f"{url}/v2/repository/models/multi/load", headers=ADMIN, timeout=60)
            assert r.status_code == 200, r.text
            swaps += 1
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    failures = [detail for ok, detail in results if not ok]
    versions = {detail for ok, detail in results if ok}
    print(f"\nhot swap: {swaps} swaps, {len(results)} requests, {len(failures)} failures, "
          f"versions seen {sorted(versions)}")
    assert swaps == 6 and len(results) > 50
    assert failures == []
    assert len(versions) >= 3  # the answers followed the swaps


def test_lazy_loading_budget_and_lru(quick_run, tmp_path):
    src = quick_run[0]
    root = tmp_path / "many"
    root.mkdir()
    names = [f"m{i}" for i in range(5)]
    for n in names:
        copy_model(src / "sst2-dan-lowrank", root / n, n)
    # a budget smaller than one model: every load evicts every other unpinned model
    srv = Server(root, env={"SLIMTEXT_MEMORY_BUDGET_MB": "0.5", "SLIMTEXT_PINNED_MODELS": "m0",
                            "SLIMTEXT_DEFAULT_MODEL": "m0"})
    try:
        srv.wait_ready()
        idx = index(srv.url)
        assert idx[("m0", "1")]["state"] == "READY" and idx[("m0", "1")]["pinned"]  # pinned: loaded at start
        assert all(idx[(n, "1")]["reason"] == "not loaded" for n in names[1:])  # the others wait for first use
        # concurrent first requests load once
        barrier = threading.Barrier(8)
        codes = []

        def first() -> None:
            barrier.wait()
            codes.append(classify(srv.url, model="m1").status_code)

        threads = [threading.Thread(target=first) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [200] * 8
        assert index(srv.url)[("m1", "1")]["loads"] == 1
        for n in names[2:]:
            assert classify(srv.url, model=n).status_code == 200
        idx = index(srv.url)
        assert [n for n in names if idx[(n, "1")]["state"] == "READY"] == ["m0", "m4"]  # LRU evicted m1..m3
        assert idx[("m1", "1")]["reason"] == "evicted (memory budget)"
        assert idx[("m4", "1")]["memory_bytes"] >= idx[("m4", "1")]["onnx_bytes"] > 0
        assert classify(srv.url, model="m1").status_code == 200  # reloaded on request
        assert index(srv.url)[("m1", "1")]["loads"] == 2
        models = httpx.get(f"{srv.url}/models", timeout=10).json()
        assert {m["manifest"]["name"] for m in models["models"]} == {"m0", "m1"}
        assert all(m["memory_bytes"] > 0 for m in models["models"])
        metrics = httpx.get(f"{srv.url}/metrics", timeout=10).text
        assert re.search(r"^slimtext_model_evictions_total [4-9]", metrics, re.M)
        assert re.search(r'^slimtext_model_load_rss_bytes\{model="m4"\} \d', metrics, re.M)
        assert "slimtext_models_registered 5.0" in metrics
        # SIGHUP: a rescan; a new folder then loads on its first request
        copy_model(src / "sst2-dan-lowrank", root / "late", "late")
        assert classify(srv.url, model="late").status_code == 404
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "rescanned many (SIGHUP)" not in srv.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert classify(srv.url, model="late").status_code == 200
    finally:
        srv.stop()
