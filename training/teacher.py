"""A transformer teacher (issue 23): all-MiniLM-L6-v2 + mean pooling + a linear head, fine-tuned on CPU.

The encoder is the pinned MiniLM, fetched offline and hash-checked (training/teacher_fetch.py); transformers reads
it offline (HF_HUB_OFFLINE=1); nothing here is needed to serve (the `teacher` extra, never `serve`).

`run_teacher` fine-tunes on a dataset's train split (AdamW, linear warm-up and decay, batch 32,
max_length 64), keeps the epoch with the best dev accuracy, and writes

- `training/teacher_cache/<dataset>.npz` (committed, small): the logits of every split (training/teacher_logits.py);
- the fine-tuned teacher itself (`~/.cache/slimtext/teachers/<dataset>`, 91 MB, not committed) for labelling
  new text (`FineTuned.load(...).logits(texts)`);
- one row of `docs/teacher.csv` (accuracy, fine-tuning wall time, size, CPU latency), rendered as docs/teacher.md
  (training/teacher_report.py).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from slimtext.data import Examples, datasets_root, read_examples, split_path
from training.spacy_vectors import cache_dir, sha256_of
from training.teacher_fetch import teacher_folder
from training.teacher_logits import EXTRA_TEXTS, cache_path, write_cache
from training.teacher_report import update_report

if TYPE_CHECKING:
    import torch
    from torch import nn

SPLITS = ("train", "dev", "test")
Log = Callable[[str], None]


# ---------------------------------------------------------------- the model

def _transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers
    except ImportError as e:
        raise OSError("the teacher needs the `teacher` extra: pip install -e '.[train,teacher]'") from e
    transformers.logging.set_verbosity_error()
    return transformers


def _classifier_class():
    from torch import nn

    class MeanPoolClassifier(nn.Module):
        """Encoder -> mean of the last hidden states over the attention mask -> linear head."""

        def __init__(self, encoder: nn.Module, n_labels: int):
            super().__init__()
            self.encoder = encoder
            self.head = nn.Linear(encoder.config.hidden_size, n_labels)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return self.head(pooled)

    return MeanPoolClassifier


def build_classifier(folder: Path, n_labels: int, seed: int = 0) -> tuple[Any, nn.Module]:
    """(tokenizer, model): the encoder read offline from `folder` plus a fresh head seeded by `seed`."""
    import torch

    tf = _transformers()
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        encoder = tf.AutoModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{folder}: not a readable transformers model folder ({' '.join(str(e).split())[:300]})") \
            from e
    torch.manual_seed(seed)
    return tokenizer, _classifier_class()(encoder, n_labels)


def param_count(model: nn.Module) -> tuple[int, int]:
    """(parameters, bytes of their storage) of the whole classifier."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)


# ---------------------------------------------------------------- batching

def encode_texts(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def pad(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, :len(x)] = 1
    return input_ids, mask


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                           group: int = 50) -> list[np.ndarray]:
    """Shuffled batches of similar lengths (less padding on CPU): shuffle, sort within chunks of
    `group` batches, cut, shuffle the batches."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * group
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def predict_logits(model: nn.Module, ids: list[list[int]], pad_id: int, batch_size: int = 128) -> np.ndarray:
    """float32 logits [N, C] in the order of `ids` (run in length order: little padding)."""
    import torch

    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.zeros((len(ids), model.head.out_features), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            input_ids, mask = pad([ids[i] for i in idx], pad_id)
            out[idx] = model(input_ids, mask).float().numpy()
    return out


# ---------------------------------------------------------------- fine-tuning

@dataclass(frozen=True)
class TeacherConfig:
    epochs: int = 2
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.06  # fraction of all steps with a linear warm-up, then linear decay to 0
    batch_size: int = 32
    max_length: int = 64
    eval_batch_size: int = 128
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length", "eval_batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")


@dataclass
class FitResult:
    best_epoch: int
    dev_acc: list[float] = field(default_factory=list)
    epoch_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(1) == y).mean())


def fine_tune(model: nn.Module, train: tuple[list[list[int]], np.ndarray], dev: tuple[list[list[int]], np.ndarray],
              pad_id: int, cfg: TeacherConfig, log: Log = print) -> FitResult:
    """AdamW with linear warm-up/decay; after each epoch the dev accuracy; the model ends with the best
    epoch's weights (the first best on ties)."""
    import torch

    ids, y = train
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    lengths = np.array([len(x) for x in ids])
    steps_per_epoch = math.ceil(len(ids) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(cfg.warmup * total))
    decay = ["bias", "LayerNorm.weight", "layer_norm.weight"]
    groups = [{"params": [p for n, p in model.named_parameters() if not any(d in n for d in decay)],
               "weight_decay": cfg.weight_decay},
              {"params": [p for n, p in model.named_parameters() if any(d in n for d in decay)],
               "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    y_t = torch.as_tensor(y, dtype=torch.long)
    result, best, best_state = FitResult(best_epoch=0), -1.0, None
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        start, model_loss, seen = time.perf_counter(), 0.0, 0
        model.train()
        for batch in length_grouped_batches(lengths, cfg.batch_size, rng):
            input_ids, mask = pad([ids[i] for i in batch], pad_id)
            loss = torch.nn.functional.cross_entropy(model(input_ids, mask), y_t[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            model_loss += loss.item() * len(batch)
            seen += len(batch)
        acc = _accuracy(predict_logits(model, dev[0], pad_id, cfg.eval_batch_size), dev[1])
        result.dev_acc.append(acc)
        result.epoch_s.append(time.perf_counter() - start)
        log(f"teacher epoch {epoch}/{cfg.epochs} loss {model_loss / seen:.4f} dev {acc:.4f} "
            f"{result.epoch_s[-1]:.0f}s")
        if acc > best:
            best, result.best_epoch = acc, epoch
            best_state = copy.deepcopy(model.state_dict()) if epoch < cfg.epochs else None
    if best_state is not None:
        model.load_state_dict(best_state)
    result.wall_s = time.perf_counter() - t0
    return result


def measure_latency(tokenizer, model: nn.Module, texts: list[str], max_length: int, n_single: int = 200,
                    n_batches: int = 12, batch_size: int = 32) -> dict[str, float]:
    """Median CPU µs per text, tokenizing included, on 1 torch thread: one text at a time, and in batches of
    `batch_size` (padded to the batch's longest, in the file's order)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    model.eval()

    def run(batch: list[str]) -> float:
        start = time.perf_counter()
        enc = tokenizer(batch, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        model(enc["input_ids"], enc["attention_mask"])
        return time.perf_counter() - start

    try:
        with torch.inference_mode():
            for text in texts[:10]:  # warm-up
                run([text])
            single = [run([t]) for t in texts[:n_single]]
            batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
            batches = [b for b in batches if len(b) == batch_size][:n_batches] or batches[:1]  # tiny sets: one
            batched = [run(b) / len(b) for b in batches]
    finally:
        torch.set_num_threads(previous)
    return {"latency_b1_us": float(np.median(single) * 1e6), "latency_b32_us": float(np.median(batched) * 1e6)}


# ---------------------------------------------------------------- the fine-tuned teacher on disk

class FineTuned:
    """A fine-tuned teacher folder (encoder + tokenizer + head.safetensors + teacher.json): labels new texts."""

    def __init__(self, tokenizer, model: nn.Module, labels: list[str], max_length: int):
        self.tokenizer, self.model, self.labels, self.max_length = tokenizer, model, labels, max_length

    def save(self, folder: Path, meta: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        self.model.encoder.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))
        head = {k: v.contiguous() for k, v in self.model.head.state_dict().items()}
        save_file(head, str(folder / "head.safetensors"))
        info = {"labels": self.labels, "max_length": self.max_length, **meta}
        (folder / "teacher.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> FineTuned:
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            info = json.loads((folder / "teacher.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{folder / 'teacher.json'}: not a fine-tuned teacher folder ({e})") from e
        tokenizer, model = build_classifier(folder, len(info["labels"]))
        model.head.load_state_dict(load_file(str(folder / "head.safetensors")))
        model.eval()
        return cls(tokenizer, model, info["labels"], info["max_length"])

    def logits(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        ids = encode_texts(self.tokenizer, texts, self.max_length)
        return predict_logits(self.model, ids, self.tokenizer.pad_token_id, batch_size)


# ---------------------------------------------------------------- one dataset, end to end

@dataclass(frozen=True)
class TeacherRun:
    dataset: str
    data_root: Path | None = None
    teacher_path: Path | None = None  # an extracted encoder folder instead of the pinned MiniLM
    out: Path | None = None  # logits cache folder (default training/teacher_cache)
    save: Path | None = None  # fine-tuned teacher folder (default <cache>/teachers/<dataset>)
    keep_model: bool = True  # write the fine-tuned teacher folder at all
    report: Path | None = Path("docs/teacher.csv")
    extra: bool = True  # also label EXTRA_TEXTS[dataset]
    config: TeacherConfig = field(default_factory=TeacherConfig)


def _load_split(folder: Path, split: str) -> tuple[Path, Examples]:
    path = split_path(folder, split)
    return path, read_examples(path)


def run_teacher(run: TeacherRun, log: Log = print) -> dict[str, Any]:
    """Fine-tune, select on dev, cache the logits, save the teacher, record the report row; returns the row."""
    import torch

    cfg = run.config
    t_start = time.perf_counter()
    root = datasets_root(run.data_root)
    folder = root / run.dataset
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such dataset folder (--dataset / --data-root)")
    data = {s: _load_split(folder, s) for s in SPLITS}
    labels = sorted(set(data["train"][1].labels))
    index = {label: i for i, label in enumerate(labels)}
    for split in ("dev", "test"):
        path, ex = data[split]
        unknown = sorted(set(ex.labels) - set(labels))
        if unknown:
            raise ValueError(f"{path}: labels {unknown} do not occur in the training split")
    extra = {}
    if run.extra:
        for name, (other, split) in EXTRA_TEXTS.get(run.dataset, {}).items():
            if (root / other).is_dir():
                extra[name] = (f"{other}/{split}", _load_split(root / other, split))

    torch.set_num_threads(cfg.threads)
    source = teacher_folder(run.teacher_path)
    tokenizer, model = build_classifier(source, len(labels), cfg.seed)
    pad_id = tokenizer.pad_token_id
    encoded = {s: (encode_texts(tokenizer, ex.texts, cfg.max_length),
                   np.array([index[y] for y in ex.labels], dtype=np.int64)) for s, (_, ex) in data.items()}
    params, param_bytes = param_count(model)
    log(f"teacher {run.dataset}: {len(labels)} labels, {len(encoded['train'][0])} training texts, "
        f"{params:,} parameters, from {source}")
    fit = fine_tune(model, encoded["train"], encoded["dev"], pad_id, cfg, log)

    cached: dict[str, tuple[str, str, np.ndarray]] = {}
    for split, (path, _) in data.items():
        cached[split] = (f"{run.dataset}/{path.name}", sha256_of(path),
                         predict_logits(model, encoded[split][0], pad_id, cfg.eval_batch_size))
    for name, (src, (path, ex)) in extra.items():
        log(f"teacher {run.dataset}: labelling {len(ex)} texts of {src}")
        ids = encode_texts(tokenizer, ex.texts, cfg.max_length)
        cached[name] = (f"{src.split('/')[0]}/{path.name}", sha256_of(path),
                        predict_logits(model, ids, pad_id, cfg.eval_batch_size))
    dev_acc = _accuracy(cached["dev"][2], encoded["dev"][1])
    test_acc = _accuracy(cached["test"][2], encoded["test"][1])
    weights = source / "model.safetensors"
    meta = {"dataset": run.dataset, "teacher": source.name, "weights_sha256": sha256_of(weights)
            if weights.is_file() else None, "config": asdict(cfg), "best_epoch": fit.best_epoch,
            "dev_acc": dev_acc, "test_acc": test_acc, "dev_acc_by_epoch": fit.dev_acc}
    out = cache_path(run.dataset, run.out)
    write_cache(out, labels, cached, meta)
    log(f"teacher {run.dataset}: dev {dev_acc:.4f} test {test_acc:.4f} (epoch {fit.best_epoch}) -> {out}")

    if run.keep_model:
        save = run.save if run.save is not None else cache_dir() / "teachers" / run.dataset
        log(f"teacher {run.dataset}: fine-tuned teacher -> {save}")
        FineTuned(tokenizer, model, labels, cfg.max_length).save(save, meta)
    latency = measure_latency(tokenizer, model, data["dev"][1].texts, cfg.max_length)
    row = {"dataset": run.dataset, "train_examples": len(encoded["train"][0]), "epochs": cfg.epochs,
           "best_epoch": fit.best_epoch, "dev_acc": f"{dev_acc:.4f}", "test_acc": f"{test_acc:.4f}",
           "dev_acc_by_epoch": ";".join(f"{a:.4f}" for a in fit.dev_acc), "fit_wall_s": f"{fit.wall_s:.1f}",
           "params": params, "param_bytes": param_bytes,
           "weights_file_bytes": weights.stat().st_size if weights.is_file() else "",
           "latency_b1_us": f"{latency['latency_b1_us']:.0f}", "latency_b32_us": f"{latency['latency_b32_us']:.0f}",
           "threads": cfg.threads, "lr": cfg.lr, "batch_size": cfg.batch_size, "max_length": cfg.max_length,
           "cached_splits": ";".join(cached), "cache_bytes": out.stat().st_size,
           "date": time.strftime("%Y-%m-%d", time.gmtime())}
    row["total_wall_s"] = f"{time.perf_counter() - t_start:.1f}"
    if run.report is not None:
        update_report(run.report, row)
    return row
