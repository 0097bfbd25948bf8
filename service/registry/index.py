"""What the registry reports: the repository index (GET /models, POST /v2/repository/index), its figures for
/metrics, and error messages fit for clients (no absolute paths)."""

from __future__ import annotations

import re
from pathlib import Path

from service.registry.scan import Entry, slots

_ABS_PATH = re.compile(r"(?<![\w.-])/[^\s'\"(),:]+")  # an absolute path, not "folder/file"

FIGURES = {"models_registered": ("gauge", "Model versions in the repository"),
           "models_loaded": ("gauge", "Model versions loaded"),
           "models_memory_bytes": ("gauge", "Memory charged to loaded models (RSS growth measured at load)"),
           "memory_budget_bytes": ("gauge", "SLIMTEXT_MEMORY_BUDGET_MB in bytes (0: none)"),
           "model_loads": ("counter", "Model loads (start-up, first use, reloads)"),
           "model_evictions": ("counter", "Models evicted to stay within the memory budget"),
           "model_load_failures": ("counter", "Model loads that failed")}


def index(entries: dict[str, Entry], default: str | None, ready_only: bool = False) -> list[dict]:
    """Every version of every model, by name and version: its state, why it is not READY, what it costs."""
    out = []
    for entry in sorted(entries.values(), key=lambda e: e.name):
        for version in sorted(entry.versions, key=int):
            s = entry.versions[version]
            if ready_only and s.loaded is None:
                continue
            out.append({"name": s.name, "version": s.version, "state": s.state, "reason": s.reason,
                        "sha256": s.loaded.sha256 if s.loaded else None,
                        "memory_bytes": s.memory_bytes if s.loaded else 0, "onnx_bytes": s.onnx_bytes,
                        "pinned": entry.pinned or entry.name == default, "default": entry.name == default,
                        "loads": s.loads})
    return out


def figures(entries: dict[str, Entry], budget_bytes: int | None, loads: int, evictions: int,
            load_failures: int) -> dict[str, float]:
    """The values of FIGURES."""
    loaded = [s for s in slots(entries) if s.loaded]
    return {"models_registered": sum(len(e.versions) for e in entries.values()),
            "models_loaded": len(loaded), "models_memory_bytes": sum(s.memory_bytes for s in loaded),
            "memory_budget_bytes": budget_bytes or 0, "model_loads": loads,
            "model_evictions": evictions, "model_load_failures": load_failures}


def public_message(models_dir: Path | None, message: str) -> str:
    """`message` for clients: paths relative to the models folder, other absolute paths hidden, 300 characters."""
    if models_dir is not None:  # "<models_dir>/sst2-dan-int8/model.onnx" -> "sst2-dan-int8/model.onnx"
        message = message.replace(f"{models_dir}/", "")
    return _ABS_PATH.sub("<path>", message)[:300]


def public_errors(models_dir: Path | None, errors: dict[str, str]) -> dict[str, str]:
    """`errors` for clients: the folder's name and the reason, without absolute paths."""
    return {name: public_message(models_dir, message) for name, message in errors.items()}
