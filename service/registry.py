"""Every model folder under the models dir, loaded once into its own onnxruntime session."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from service.memory import rss_bytes
from slimtext.manifest import MANIFEST_FILE, MODEL_FILE, is_valid_name
from slimtext.runtime import ModelLoadError, OnnxClassifier

log = logging.getLogger("slimtext.registry")


@dataclass
class LoadedModel:
    classifier: OnnxClassifier
    rss_growth_bytes: int  # process RSS after loading minus before

    @property
    def name(self) -> str:
        return self.classifier.manifest.name


class ModelRegistry:
    def __init__(self, models: dict[str, LoadedModel], errors: dict[str, str], default: str):
        self.models, self.errors, self.default = models, errors, default

    @classmethod
    def load(cls, models_dir: Path, default: str | None = None, intra_op_threads: int = 1,
             strict: bool = False) -> ModelRegistry:
        models: dict[str, LoadedModel] = {}
        errors: dict[str, str] = {}
        folders = [p for p in sorted(models_dir.iterdir())
                   if p.is_dir() and ((p / MANIFEST_FILE).exists() or (p / MODEL_FILE).exists())]
        cls._warm_up(folders, intra_op_threads)
        for folder in folders:
            try:
                loaded = cls._load_one(folder, intra_op_threads)
            except ModelLoadError as e:
                errors[folder.name] = str(e)
                log.error("model %s not served: %s", folder.name, e)
                if strict:
                    raise
                continue
            models[loaded.name] = loaded
            log.info("loaded %s (%s, %d bytes ONNX, RSS +%d bytes)", loaded.name, loaded.classifier.manifest.kind,
                     loaded.classifier.manifest.onnx_bytes, loaded.rss_growth_bytes)
        if not models:
            raise ModelLoadError(f"{models_dir}: no servable model folder (errors: {errors or 'none found'})")
        default = default or cls._pick_default(models)
        if default not in models:
            raise ModelLoadError(f"default model {default!r} is not among the loaded models {sorted(models)}")
        return cls(models, errors, default)

    @staticmethod
    def _warm_up(folders: list[Path], intra_op_threads: int) -> None:
        """Load and drop the smallest model once, so that onnxruntime's one-time start-up memory is not
        charged to whichever model happens to load first."""
        with_model = [f for f in folders if (f / MODEL_FILE).is_file()]
        if not with_model:
            return
        smallest = min(with_model, key=lambda f: (f / MODEL_FILE).stat().st_size)
        with contextlib.suppress(ModelLoadError):  # reported properly when the folder is loaded for real
            OnnxClassifier(smallest, intra_op_threads=intra_op_threads)

    @staticmethod
    def _load_one(folder: Path, intra_op_threads: int) -> LoadedModel:
        if not is_valid_name(folder.name):
            raise ModelLoadError(f"{folder}: folder name is not a valid model name")
        before = rss_bytes()
        classifier = OnnxClassifier(folder, intra_op_threads=intra_op_threads)
        if classifier.manifest.name != folder.name:
            raise ModelLoadError(f"{folder / MANIFEST_FILE}: name {classifier.manifest.name!r} "
                                 f"differs from its folder {folder.name!r}")
        return LoadedModel(classifier, max(0, rss_bytes() - before))

    @staticmethod
    def _pick_default(models: dict[str, LoadedModel]) -> str:
        lowrank = [n for n, m in models.items() if m.classifier.manifest.kind == "lowrank"]
        return (lowrank or sorted(models))[0]

    def get(self, name: str | None) -> LoadedModel | None:
        return self.models.get(self.default if name is None else name)
