"""Every model folder under the models dir, loaded once into its own onnxruntime session."""

from __future__ import annotations

import contextlib
import logging
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from service.memory import rss_bytes
from slimtext.manifest import MANIFEST_FILE, MODEL_FILE, is_valid_name
from slimtext.runtime import ModelLoadError, OnnxClassifier
from slimtext.safefs import DEFAULT_LIMITS, FileLimits, lstat_size

log = logging.getLogger("slimtext.registry")
_ABS_PATH = re.compile(r"(?<![\w.-])/[^\s'\"(),:]+")  # an absolute path, not "folder/file"


@dataclass
class LoadedModel:
    classifier: OnnxClassifier
    rss_growth_bytes: int  # process RSS after loading minus before

    @property
    def name(self) -> str:
        return self.classifier.manifest.name


class ModelRegistry:
    def __init__(self, models: dict[str, LoadedModel], errors: dict[str, str], default: str,
                 models_dir: Path | None = None):
        self.models, self.errors, self.default = models, errors, default
        self.models_dir = models_dir

    @classmethod
    def load(cls, models_dir: Path, default: str | None = None, intra_op_threads: int = 1,
             strict: bool = False, limits: FileLimits = DEFAULT_LIMITS) -> ModelRegistry:
        """Every model folder of `models_dir`, each read as untrusted input (slimtext.safefs); a bad one
        is logged with its file and reason and skipped, unless `strict`."""
        models: dict[str, LoadedModel] = {}
        errors: dict[str, str] = {}
        folders = cls._candidates(models_dir)
        cls._warm_up([f for f in folders if not f.is_symlink()], intra_op_threads, limits)
        for folder in folders:
            try:
                loaded = cls._load_one(folder, intra_op_threads, limits)
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
        return cls(models, errors, default, models_dir)

    @staticmethod
    def _candidates(models_dir: Path) -> list[Path]:
        """Sub-folders holding a manifest or a model file (as entries of any type: a symlinked or
        special file is reported when loading, not silently ignored); symlinked folders too, so that
        they are reported rather than followed."""
        out = []
        for p in sorted(models_dir.iterdir()):
            try:
                mode = p.lstat().st_mode
            except OSError:
                continue
            linked_folder = stat.S_ISLNK(mode) and p.is_dir()
            if linked_folder or (stat.S_ISDIR(mode) and any(_lexists(p / n) for n in (MANIFEST_FILE, MODEL_FILE))):
                out.append(p)
        return out

    @staticmethod
    def _warm_up(folders: list[Path], intra_op_threads: int, limits: FileLimits) -> None:
        """Load and drop the smallest model once, so that onnxruntime's one-time start-up memory is not
        charged to whichever model happens to load first."""
        sizes = {f: lstat_size(f / MODEL_FILE) for f in folders}
        with_model = [f for f, size in sizes.items() if size is not None and size <= limits.model_bytes]
        if not with_model:
            return
        for folder in sorted(with_model, key=lambda f: sizes[f])[:3]:  # the smallest one that loads
            with contextlib.suppress(ModelLoadError):  # reported properly when the folder is loaded for real
                OnnxClassifier(folder, intra_op_threads=intra_op_threads, limits=limits)
                return

    @staticmethod
    def _load_one(folder: Path, intra_op_threads: int, limits: FileLimits = DEFAULT_LIMITS) -> LoadedModel:
        if not is_valid_name(folder.name):
            raise ModelLoadError(f"{folder}: folder name is not a valid model name")
        if folder.is_symlink():
            raise ModelLoadError(f"{folder}: the folder is a symlink; not followed")
        before = rss_bytes()
        classifier = OnnxClassifier(folder, intra_op_threads=intra_op_threads, limits=limits)
        if classifier.manifest.name != folder.name:
            raise ModelLoadError(f"{folder / MANIFEST_FILE}: name {classifier.manifest.name!r} "
                                 f"differs from its folder {folder.name!r}")
        return LoadedModel(classifier, max(0, rss_bytes() - before))

    @staticmethod
    def _pick_default(models: dict[str, LoadedModel]) -> str:
        lowrank = [n for n, m in models.items() if m.classifier.manifest.kind == "lowrank"]
        return (lowrank or sorted(models))[0]

    def public_errors(self) -> dict[str, str]:
        """`errors` for clients: the folder's name and the reason, without absolute paths."""
        out = {}
        for name, message in self.errors.items():
            reason = message
            if self.models_dir is not None:  # "<models_dir>/sst2-dan-int8/model.onnx" -> "sst2-dan-int8/model.onnx"
                reason = reason.replace(f"{self.models_dir}/", "")
            out[name] = _ABS_PATH.sub("<path>", reason)[:300]
        return out

    def get(self, name: str | None) -> LoadedModel | None:
        return self.models.get(self.default if name is None else name)


def _lexists(path: Path) -> bool:
    try:
        path.lstat()
    except OSError:
        return False
    return True
