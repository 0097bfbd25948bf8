"""The typed core (service/classify.py) and the shape of service/: typed results and errors, one error table
per transport that covers every domain error, edges declared in create_app, no module-level settings."""

from __future__ import annotations

import ast
import asyncio
import inspect
import subprocess
import sys

import httpx
import numpy as np
import pytest

from service import domain, errors, main, protocol
from service.classify import Classifier, Texts
from service.config import Settings
from service.metrics import Metrics
from service.registry import ModelRegistry, RegistryConfig
from tests.conftest import ROOT

DOMAIN_ERRORS = [c for c in vars(domain).values() if inspect.isclass(c) and issubclass(c, domain.DomainError)]


@pytest.fixture(scope="module")
def core(quick_run):
    settings = Settings(models_dir=quick_run[0], max_texts=4, max_chars=50)
    registry = ModelRegistry.load(RegistryConfig.from_settings(settings))
    classifier = Classifier(settings, registry, Metrics())
    yield classifier
    classifier.offloader.close()
    registry.close()


def test_the_core_answers_a_typed_classification(core):
    texts = ["a gorgeous , witty , seductive movie .", "a dull , lifeless mess .", "fine"]
    result = asyncio.run(core.classify(Texts(texts, "sst2-dan-lowrank")))
    assert isinstance(result, domain.Classification)
    assert (result.model, result.version, result.labels) == ("sst2-dan-lowrank", "1", ("negative", "positive"))
    assert result.probabilities.shape == (3, 2) and result.probabilities.dtype == np.float32
    assert np.allclose(result.probabilities.sum(1), 1, atol=1e-5)
    assert result.n_tokens.tolist() == [len(t.split()) for t in texts]
    assert result.timing.total >= result.timing.inference >= 0
    assert result.best.tolist() == result.probabilities.argmax(1).tolist()


@pytest.mark.parametrize(("request_", "error", "code"), [
    (Texts(["a"] * 5), domain.TooLarge, "too_many_texts"),
    (Texts(["a" * 51]), domain.TooLarge, "text_too_long"),
    (Texts(["a"], "nope"), domain.UnknownModel, "unknown_model"),
    (Texts(["a"], "sst2-dan-lowrank", "7"), domain.UnknownModel, "unknown_version"),
])
def test_the_core_raises_typed_errors(core, request_, error, code):
    with pytest.raises(error) as e:
        asyncio.run(core.classify(request_))
    assert e.value.code == code and e.value.message


def test_every_transport_has_a_status_for_every_domain_error():
    """HTTP here; gRPC in a child process (its generated messages clash with tritonclient's in one protobuf pool,
    and other tests load tritonclient's)."""
    pytest.importorskip("grpc")
    assert DOMAIN_ERRORS and set(DOMAIN_ERRORS) <= set(errors.HTTP_STATUS)
    for cls in DOMAIN_ERRORS:  # only the unavailable kinds and the bare base class are 5xx
        assert (errors.http_status(cls("x")) >= 500) == (cls in (domain.DomainError, domain.ModelUnavailable,
                                                                 domain.Overloaded))
    check = ("import inspect; from service import domain; from service.grpc_codec import GRPC_STATUS, grpc_status; "
             "errs = [c for c in vars(domain).values() if inspect.isclass(c) and issubclass(c, domain.DomainError)]; "
             "missing = [c.__name__ for c in errs if c not in GRPC_STATUS]; [grpc_status(c('x')) for c in errs]; "
             "print(len(errs), missing)")
    out = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(maxsplit=1) == [str(len(DOMAIN_ERRORS)), "[]\n"]


def test_the_http_table_keeps_the_documented_statuses():
    status = {cls: errors.http_status(cls("x")) for cls in DOMAIN_ERRORS}
    assert status[domain.Malformed] == 400 and status[domain.BadInput] == 422 and status[domain.TooLarge] == 413
    assert status[domain.Unsupported] == 415 and status[domain.UnknownModel] == 404
    assert status[domain.ModelUnavailable] == status[domain.Overloaded] == 503 and status[domain.Conflict] == 409


def test_classify_other_methods_get_405_json(server):
    r = httpx.get(f"{server.url}/classify")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and r.json()["error"] == "http_error"


def test_classify_is_in_the_openapi_schema_with_its_errors(server):
    op = httpx.get(f"{server.url}/openapi.json").json()["paths"]["/classify"]["post"]
    assert {"200", "404", "413", "415", "422", "503"} <= set(op["responses"])


def _module_assignments(path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Name)}


def test_no_module_level_settings_and_no_global_statement():
    """Settings travel in objects: nothing in service/ or slimtext/runtime.py is configured by assigning a
    module global at run time."""
    for path in [*sorted((ROOT / "service").rglob("*.py")), ROOT / "slimtext" / "runtime.py"]:
        if "proto" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Global)], f"{path}: a `global` statement"
    assert "LIMITS" not in _module_assignments(ROOT / "service" / "protocol.py")
    assert "COMPACT_VOCAB" not in _module_assignments(ROOT / "slimtext" / "runtime.py")


def test_no_hand_written_file_in_service_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "service").rglob("*.py")
            if "proto" not in p.parts and (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def test_the_edges_are_declared_in_create_app_and_nothing_is_rewired_at_startup():
    source = inspect.getsource(main.create_app)
    lifespan = source[source.index("async def lifespan"):source.index("docs = settings.enable_docs")]
    assert "edges: list[Edge] = [" in source
    assert not [line for line in lifespan.splitlines() if "." in line.split("=")[0] and " = " in line
                and "app.state.classifier" not in line], "the lifespan assigns an attribute of another object"
    assert protocol.LIMITS_STATE in inspect.getsource(protocol) and "yield {LIMITS_STATE: limits}" in source


def test_the_limits_reach_each_connection_from_the_lifespan_state(quick_run):
    app = main.create_app(Settings(models_dir=quick_run[0], header_max_bytes=4096))

    async def state() -> dict:
        inner = app
        while not hasattr(inner, "router"):
            inner = inner.app
        async with inner.router.lifespan_context(inner) as st:
            return dict(st)

    limits = asyncio.run(state())[protocol.LIMITS_STATE]
    assert limits.header_max_bytes == 4096 and limits.body_max_bytes == 1_048_576


@pytest.mark.parametrize("package", ["service", "slimtext", "training", "research"])
def test_no_import_cycles(package):
    """Not at run time, and not through annotation-only (`if TYPE_CHECKING:`) imports either."""
    from bench.structure import cycles, graph

    assert cycles(graph(ROOT, package)) == []
    assert cycles(graph(ROOT, package, annotations=True)) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path):
    from bench.structure import cycles, graph

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg.b import x\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from pkg import a\n")
    (tmp_path / "pkg" / "c.py").write_text("from typing import TYPE_CHECKING\n"
                                           "if TYPE_CHECKING:\n    from pkg import a\n")
    assert cycles(graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b"]]
    (tmp_path / "pkg" / "d.py").write_text("from typing import TYPE_CHECKING\n"
                                           "if TYPE_CHECKING:\n    from pkg import c\n")
    (tmp_path / "pkg" / "c.py").write_text("from pkg import d\n")
    assert cycles(graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b"]]  # annotation-only: no run-time cycle
    assert cycles(graph(tmp_path, "pkg", annotations=True)) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"]]


def test_the_core_and_the_grpc_codec_import_no_web_framework():
    code = ("import sys, service.classify, service.domain, service.registry, service.grpc_codec; "
            "print(sorted(m for m in ('fastapi', 'starlette') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-500:] or out.stdout


def test_small_requests_run_on_the_loop_and_large_ones_in_the_worker_thread(quick_run):
    """The offload rule: with the worker thread held busy, texts under both thresholds (offload_min_texts,
    offload_min_chars) are answered at once on the event loop; a request at either threshold waits for the thread."""
    import threading

    settings = Settings(models_dir=quick_run[0], offload_min_texts=8, offload_min_chars=400)
    registry = ModelRegistry.load(RegistryConfig.from_settings(settings))
    clf = Classifier(settings, registry, Metrics())

    async def scenario():
        release = threading.Event()
        busy = asyncio.ensure_future(clf.offloader.run(lambda: release.wait(10)))
        await asyncio.sleep(0.05)
        small = await asyncio.wait_for(clf.classify(Texts(["a gorgeous , witty movie ."] * 7)), 2)
        many = asyncio.ensure_future(clf.classify(Texts(["fine"] * 8)))
        long = asyncio.ensure_future(clf.classify(Texts(["a gorgeous , witty movie . " * 15])))  # 405 characters
        await asyncio.sleep(0.3)
        waiting = (many.done(), long.done())
        release.set()
        await busy
        return small, waiting, await many, await long

    try:
        small, waiting, many, long = asyncio.run(scenario())
    finally:
        clf.offloader.close()
        registry.close()
    assert len(small.probabilities) == 7 and waiting == (False, False)
    assert len(many.probabilities) == 8 and len(long.probabilities) == 1


def test_the_red_team_and_the_loop_bench_attack_the_loop_at_its_bound(tmp_path):
    """bench/redteam.py's on_loop_64 and bench/loop_bound.py time the costliest request the event loop runs itself:
    their inputs must stay under the default offload thresholds, and come close to the character bound."""
    from bench.loop_bound import FILLERS, at_the_bound
    from bench.redteam import ON_LOOP_TEXTS

    s = Settings(models_dir=tmp_path)
    for texts in (ON_LOOP_TEXTS, *(at_the_bound(f, n, s.offload_min_chars) for f in FILLERS.values()
                                   for n in (1, 32, s.offload_min_texts - 1))):
        assert len(texts) < s.offload_min_texts and sum(map(len, texts)) < s.offload_min_chars
        assert sum(map(len, texts)) > 0.95 * s.offload_min_chars
