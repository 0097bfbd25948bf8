"""The CPU µs per text of docs/accuracy.md: every slimtext model shape in the committed CSVs and fastText's, timed
into docs/accuracy-latency.csv, then the doc re-rendered (bench/accuracy_doc.py reads the cached timings).

    nice -n 5 python -m bench.accuracy_latency [--only sst2 trec] [--skip-fasttext] [--missing] [--iters 2000]

It needs the datasets (for each vocabulary) and `fasttext`: it exports freshly initialised (untrained) models of
exactly the shapes in the CSVs (latency does not depend on the weights' values), times them with
bench.measure.ort_latency (onnxruntime session.run, 1 thread, batch 1, one 20-token text) and times fastText
models of the recorded shapes (1 training epoch) the same way.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.accuracy_doc import (
    ARCHS,
    DATASETS,
    DIM,
    DOC,
    DOCS,
    LATENCY_COLUMNS,
    LATENCY_CSV,
    PLOT,
    REDUCTION,
    TEXT,
    VARIANTS,
    Data,
    render,
)


@dataclass(frozen=True)
class Shape:
    name: str  # the dataset folder the vocabulary is built from
    arch: str
    vocab_size: int | None  # None: whatever the vocabulary is (checked against params instead)
    rank: int
    params: int | None  # the recorded fp32 full model's parameter count, to check the shapes


def shapes(data: Data) -> list[Shape]:
    out = []
    for ds in DATASETS:
        for arch in ARCHS:
            rows = [r for r in data.sweep if r["dataset"] == ds and r["model"] == arch
                    and r.get("vocab", "train") == "train" and int(r["dim"]) == DIM]
            low = [r for r in rows if r["kind"] == "online" and r["reduction"] == REDUCTION and r["rank"]]
            full = [r for r in rows if r["method"] == "full"]
            if low and full:
                out.append(Shape(ds, arch, int(full[0]["vocab_size"]), int(low[0]["rank"]), int(full[0]["params"])))
            elif low := [r for r in data.distill if r["dataset"] == ds and (r.get("model") or "dan") == arch
                         and r["method"] == "online" and r["rank"]]:  # only bench.distill_pilot ran it here
                out.append(Shape(ds, arch, None, int(low[0]["rank"]), None))
    for arch in ARCHS:
        rows = [r for r in data.phrases if r["data"] == "phrases" and r["model"] == arch]
        low = [r for r in rows if r["kind"] == "online" and r["rank"]]
        full = [r for r in rows if r["kind"] == "full"]
        if low and full:
            out.append(Shape("sst2-phrases", arch, None, int(low[0]["rank"]), int(full[0]["params"])))
    return out


def _times_us(fn, n: int, warm: int = 50) -> list[float]:
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(1e6 * (time.perf_counter() - t0))
    return ts


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def time_shape(shape: Shape, iters: int, repeats: int = 3, log=print) -> list[dict]:
    """Export the four variants of `shape` from untrained models and time them `repeats` times (ort_latency: the
    variants take turns); per variant the repeat with the lowest median is kept (the others' interference only
    ever adds time)."""
    import onnxruntime
    import torch

    from bench.measure import ort_latency
    from slimtext.data import datasets_root, load_splits
    from slimtext.manifest import MODEL_FILE, VOCAB_FILE, Accuracy, ParamCounts
    from slimtext.runtime import OnnxClassifier
    from slimtext.tokenizer import Tokenizer, TokenizerConfig
    from training.architectures import get_architecture
    from training.model import FullEmbedding, LowRankEmbedding
    from training.onnx_export import INT8_WEIGHTS, export_onnx, quantize_int8_weights, write_artifact

    torch.set_num_threads(1)
    torch.manual_seed(0)
    train = load_splits(datasets_root() / shape.name)["train"]
    tok = Tokenizer.build(TokenizerConfig(), train.texts)  # training/workbench.py's vocabulary (no extra words)
    v, k, labels = len(tok), shape.rank, sorted(set(train.labels))
    if shape.vocab_size is not None and v != shape.vocab_size:
        raise RuntimeError(f"{shape.name}: the vocabulary has {v} words, the CSV says {shape.vocab_size}")
    arch = get_architecture(shape.arch)
    models = {"full": arch.build(FullEmbedding(0.1 * torch.randn(v, DIM)), len(labels)).eval(),
              "lowrank": arch.build(LowRankEmbedding(0.1 * torch.randn(v, k), 0.1 * torch.randn(k, DIM)),
                                    len(labels)).eval()}
    params = sum(p.numel() for p in models["full"].parameters())
    if shape.params is not None and params != shape.params:
        raise RuntimeError(f"{shape.name} {shape.arch}: {params} parameters, the CSV says {shape.params}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="slimtext-accdoc-") as tmp:
        clfs = {}
        for variant in VARIANTS:
            base = "lowrank" if variant.startswith("lowrank") else "full"
            model = models[base]
            fp32 = Path(tmp) / f"{base}.onnx"
            if not fp32.exists():
                export_onnx(model, fp32)
            src = fp32
            if variant.endswith("int8"):
                src = Path(tmp) / f"{variant}.onnx"
                quantize_int8_weights(fp32, src)
            emb = sum(p.numel() for p in model.embedding.parameters())
            folder = Path(tmp) / variant.replace("+", "-")
            write_artifact(folder, src, tok, name=f"t-{variant.replace('+', '-')}",
                           kind="int8" if variant.endswith("int8") else base, architecture=shape.arch,
                           dataset=shape.name, labels=labels, embedding_dim=DIM, rank=k if base == "lowrank" else None,
                           method=None, quantization=INT8_WEIGHTS if variant.endswith("int8") else None,
                           params=ParamCounts(embedding=emb, embedding_full=v * DIM,
                                              total=sum(p.numel() for p in model.parameters())),
                           embedding_compression=1 - emb / (v * DIM), accuracy=Accuracy())
            clfs[variant] = OnnxClassifier(folder, intra_op_threads=1)
        runs = [ort_latency(clfs, [TEXT] * 64, batch=1, iters=iters) for _ in range(repeats)]
        lat = {v: min((r[v] for r in runs), key=lambda x: x.p50) for v in clfs}
        for variant, clf in clfs.items():
            tok_us = min(statistics.median(_times_us(lambda c=clf: c.tokenizer.encode_batch([TEXT]), 2000))
                         for _ in range(repeats))
            rows.append({"shape": shape.name, "arch": shape.arch, "variant": variant, "vocab_size": v, "dim": DIM,
                         "rank": k if variant.startswith("lowrank") else "", "n_classes": len(labels),
                         "params": sum(p.numel() for p in models["lowrank" if variant.startswith("lowrank")
                                                                 else "full"].parameters()),
                         "timed_file": "model.onnx" + (" (int8-weights-per-row)" if variant.endswith("int8") else ""),
                         "file_bytes": (clf.folder / MODEL_FILE).stat().st_size,
                         "vocab_json_bytes": (clf.folder / VOCAB_FILE).stat().st_size,
                         "tokens": int(clf.tokenizer.encode_batch([TEXT])[1][0]),
                         "run_us_p50": f"{lat[variant].p50:.2f}", "run_us_p99": f"{lat[variant].p99:.2f}",
                         "tokenize_us_p50": f"{tok_us:.2f}", "iters": iters, "repeats": repeats, "threads": 1,
                         "runtime": f"onnxruntime {onnxruntime.__version__}", "date": dt.date.today().isoformat()})
            log(f"  {shape.name} {shape.arch} {variant}: {lat[variant].p50:.1f} µs "
                f"(repeats: {', '.join(f'{r[variant].p50:.1f}' for r in runs)}) "
                f"(file {rows[-1]['file_bytes']:,} bytes, tokenize {tok_us:.1f} µs)")
    return rows


def fasttext_quant_settings(md: Path) -> dict[tuple[str, int], tuple[bool, int]]:
    """(dataset, dim) -> (qnorm, cutoff) as docs/fasttext.md's table records them (fasttext.csv keeps no such
    column)."""
    out = {}
    for line in md.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| (\w+) \| (\d+) \| [\d.]+ \| .*? \| .*? \| (True|False) / ([\d,]+) \|", line)
        if m:
            out[(m.group(1), int(m.group(2)))] = (m.group(3) == "True", int(m.group(4).replace(",", "")))
    return out


def time_fasttext(data: Data, iters: int, only: list[str] | None = None, log=print) -> list[dict]:
    import fasttext

    from bench.fasttext_anchor import FIXED, quantize, tokenizer, train, write_dataset
    from slimtext.data import datasets_root

    settings = fasttext_quant_settings(DOCS / "fasttext.md")
    text = " ".join(tokenizer().tokenize(TEXT))
    rows = []
    cells = sorted({(r["dataset"], int(r["dim"])) for r in data.fasttext if not only or r["dataset"] in only},
                   key=lambda c: (DATASETS.index(c[0]), c[1]))
    for ds, dim in cells:
        with tempfile.TemporaryDirectory(prefix="slimtext-accdoc-ft-") as tmp:
            paths = write_dataset(datasets_root() / ds, Path(tmp))
            model = train(paths, dim, 0.25, 0, fixed={**FIXED, "epoch": 1})  # the shapes of the recorded models
            words = len(model.get_words())
            for variant in ("bin", "ftz"):
                if variant == "ftz":
                    qnorm, cutoff = settings[(ds, dim)]
                    quantize(model, paths, qnorm, cutoff)
                f = Path(tmp) / f"model.{variant}"
                model.save_model(str(f))
                loaded = fasttext.load_model(str(f))
                us = _times_us(lambda m=loaded: m.predict(text), iters)
                p50 = statistics.median(us)
                rows.append({"shape": ds, "arch": "fasttext", "variant": f"{variant}-d{dim}", "vocab_size": words,
                             "dim": dim, "rank": "", "n_classes": len(loaded.get_labels()), "params": "",
                             "timed_file": f"model.{variant}" + (f" (qnorm {qnorm}, cutoff {cutoff:,})"
                                                                 if variant == "ftz" else ""),
                             "file_bytes": f.stat().st_size, "vocab_json_bytes": "", "tokens": len(text.split()),
                             "run_us_p50": f"{p50:.2f}", "run_us_p99": f"{_percentile(us, 99):.2f}",
                             "tokenize_us_p50": "",
                             "iters": iters, "threads": 1, "runtime": f"fasttext {getattr(fasttext, '__version__', '')}"
                             .strip(), "date": dt.date.today().isoformat()})
                log(f"  {ds} fastText d{dim} .{variant}: {p50:.1f} µs (file {f.stat().st_size:,} bytes)")
                del loaded
            del model
    return rows


def measure(docs: Path, iters: int, only: list[str] | None = None, skip_fasttext: bool = False, repeats: int = 3,
            missing: bool = False, log=print) -> None:
    data = Data.load(docs)
    path = docs / LATENCY_CSV
    rows = {(r["shape"], r["arch"], r["variant"]): r for r in data.latency}
    for shape in shapes(data):
        if only and shape.name not in only:
            continue
        if missing and all((shape.name, shape.arch, v) in rows for v in VARIANTS):
            continue
        log(f"{shape.name} {shape.arch}: |V| {shape.vocab_size or '?'}, k {shape.rank}")
        for r in time_shape(shape, iters, repeats, log):
            rows[(r["shape"], r["arch"], r["variant"])] = r
    if not skip_fasttext:
        for r in time_fasttext(data, iters, only, log):
            rows[(r["shape"], r["arch"], r["variant"])] = r
    order = [*DATASETS, "sst2-phrases"]
    out = sorted(rows.values(), key=lambda r: (order.index(r["shape"]) if r["shape"] in order else 99,
                                               (*ARCHS, "fasttext").index(r["arch"]), r["variant"]))
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LATENCY_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(out)
    log(f"wrote {path} ({len(out)} rows)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=Path, default=DOCS, help="where the CSVs are (and the doc goes)")
    p.add_argument("--iters", type=int, default=2000, help="timed calls per model")
    p.add_argument("--repeats", type=int, default=3, help="timings per slimtext model, the lowest median kept")
    p.add_argument("--only", nargs="*", help="only these shapes (dataset names, sst2-phrases)")
    p.add_argument("--skip-fasttext", action="store_true", help="leave fastText's cached rows as they are")
    p.add_argument("--missing", action="store_true",
                   help="only the slimtext shapes the CSV has no timing for (the others' rows are kept)")
    args = p.parse_args(argv)
    measure(args.docs, args.iters, args.only, args.skip_fasttext, args.repeats, args.missing)
    render(args.docs)
    print(f"wrote {args.docs / DOC} and {args.docs / PLOT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
