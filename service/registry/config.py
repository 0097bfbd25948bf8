"""The registry's one settings object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slimtext.safefs import DEFAULT_LIMITS, FileLimits

if TYPE_CHECKING:
    from service.config import Settings


@dataclass(frozen=True)
class RegistryConfig:
    models_dir: Path
    default: str | None = None  # SLIMTEXT_DEFAULT_MODEL; None: aliases.json's "default", else the only model
    intra_op_threads: int = 1  # onnxruntime threads per session
    strict: bool = False  # a bad folder stops start-up (later, it is reported)
    limits: FileLimits = DEFAULT_LIMITS  # caps on the files of a model folder (slimtext.safefs)
    budget_bytes: int | None = None  # None: every model loads at start-up, nothing is evicted
    pinned: tuple[str, ...] = ()  # loaded at start-up and never evicted
    cpu_arena: bool = True  # onnxruntime's per-session memory arena

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryConfig:
        """The service's settings (SLIMTEXT_*) for the registry."""
        return cls(models_dir=settings.models_dir, default=settings.default_model,
                   intra_op_threads=settings.intra_op_threads, strict=settings.strict, limits=settings.file_limits,
                   budget_bytes=settings.memory_budget_bytes, pinned=tuple(settings.pinned_models),
                   cpu_arena=settings.ort_cpu_arena)
