"""The model registry (service/registry/) is split by job: no module over 300 lines, and no HTTP in it (it raises
the domain's errors, service/domain.py, which each transport renders)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from service.domain import Conflict, ModelUnavailable, NoDefaultModel, UnknownModel
from service.registry import ModelRegistry, RegistryConfig
from service.registry.scan import Entry, Slot

PACKAGE = Path(__file__).resolve().parent.parent / "service" / "registry"
MODULES = sorted(PACKAGE.glob("*.py"))


def test_the_registry_is_a_package_of_small_modules():
    assert not PACKAGE.with_suffix(".py").exists()
    assert {p.stem for p in MODULES} >= {"__init__", "scan", "names", "loading", "budget", "index"}
    for path in MODULES:
        lines = len(path.read_text().splitlines())
        assert lines <= 300, f"{path.name}: {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_the_registry_imports_nothing_of_http(path):
    tree = ast.parse(path.read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m == "service.errors" or m.split(".")[0] in ("fastapi", "starlette", "grpc")}
    assert "ApiError" not in path.read_text()


def test_settings_become_one_config(tmp_path):
    from service.config import Settings

    settings = Settings(models_dir=tmp_path, default_model="m", intra_op_threads=2, strict=True,
                        memory_budget_mb=1, pinned_models="a,b", ort_cpu_arena=True, max_model_bytes=4096)
    config = RegistryConfig.from_settings(settings)
    assert config == RegistryConfig(tmp_path, "m", 2, True, settings.file_limits, 1 << 20, ("a", "b"), True)
    assert config.limits.model_bytes == 4096


def _registry(tmp_path) -> ModelRegistry:
    """A registry with model "a" (versions 1 and 2, not loaded) and no default, without touching onnxruntime."""
    reg = ModelRegistry(RegistryConfig(tmp_path))
    entry = reg.entries["a"] = Entry("a")
    for v in ("1", "2"):
        entry.versions[v] = Slot("a", v, tmp_path / "a" / v)
    reg.aliases = {"alias": "a"}
    return reg


def test_lookups_raise_domain_errors_with_the_same_codes_and_messages(tmp_path):
    reg = _registry(tmp_path)
    try:
        with pytest.raises(NoDefaultModel, match=r"no default model is configured") as e:
            reg.slot(None)
        assert e.value.code == "no_default_model"
        with pytest.raises(UnknownModel, match=r"no model named 'b'; see GET /models") as e:
            reg.slot("b")
        assert e.value.code == "unknown_model"
        with pytest.raises(UnknownModel, match=r"model 'a' has no version '7' \(versions: 1, 2\)") as e:
            reg.slot("alias", "7")
        assert e.value.code == "unknown_version"
        assert reg.slot("alias").version == "2" and reg.slot("a", "01").version == "1"
        reg.default = "a"
        with pytest.raises(Conflict, match="is the default model; it cannot be unloaded") as e:
            reg.unload_model("a")
        assert e.value.code == "default_model"
        reg.default = None
        reg.unload_model("alias")
        with pytest.raises(ModelUnavailable, match=r"model 'a' is unloaded; POST /v2/repository/models/a/load") as e:
            asyncio.run(reg.acquire("a"))
        assert e.value.code == "model_unavailable"
        assert reg.get("a") is None and reg.index()[0]["reason"] == "unloaded"
    finally:
        reg.close()
