"""The tokenizer inside the graph (issue 27): parity, latency, throughput, bytes and memory. Prints the tables of
docs/tokenizer-graph.md (`python -m bench.tokenizer_graph [--model models/sst2-dan-lowrank]`).

1. Parity: the string-input graph's token ids (an extra `input_ids` output) against slimtext.tokenizer's on every
   test split under the datasets root plus tests/data/hostile_strings.json; probabilities against the served
   model (model.onnx + the Python tokenizer). Differences are listed with the reason they come from.
2. Latency at batch 1 / 32 / 256: Python tokenizer (the service's CompactTokenizer) + id-input session, against
   one call of the string-input session. Medians of interleaved repetitions of the calling thread's CPU time,
   1 intra-op thread (onnxruntime then runs in the calling thread).
3. Throughput with 2 threads calling the session at once (onnxruntime releases the GIL; the Python tokenizer
   does not).
4. Bytes of both files, and the RSS growth of loading each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from slimtext.data import datasets_root, read_examples, split_path
from slimtext.runtime import OnnxClassifier
from slimtext.tokenizer import Tokenizer
from training.graph_tokenizer import build_text_model

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "data" / "hostile_strings.json"


def hostile_strings(path: Path = HOSTILE) -> list[str]:
    """The hostile strings file: its strings plus the 100 KB texts built from its `repeat` entries."""
    data = json.loads(path.read_text())
    return [*data["strings"], *(text * times for text, times in data["repeat"])]


def session(model: onnx.ModelProto | str, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def _safe(texts: list[str]) -> np.ndarray:
    from slimtext.runtime import _utf8_safe

    return np.array(_utf8_safe(texts), dtype=object)


def explain(text: str, tok: Tokenizer) -> str:
    """Why the graph's tokens differ from Python's for `text` (the known causes, else 'other')."""
    lowered = text.lower()
    if any(len(c.lower()) != 1 for c in text) or "\u03c2" in lowered and "\u03a3" in text:
        return "lower-casing (Python's special casing: İ -> i + U+0307, final sigma ς)"
    if tok.config.split_contractions and "'" in text:
        return "contraction inside a word after the first one"
    return "other"


def parity(folder: Path, texts_by_split: dict[str, list[str]], batch: int = 256) -> dict:
    tok = Tokenizer.load(folder / "vocab.json")
    served = OnnxClassifier(folder)
    labels = served.labels
    sess = session(build_text_model(folder / "model.onnx", tok, labels, extra_outputs=True))
    report: dict = {"splits": {}, "differences": []}
    for name, texts in texts_by_split.items():
        if name.endswith("one per call"):
            batch = 1
        same = 0
        max_dp, label_mismatch = 0.0, 0
        for i in range(0, len(texts), batch):
            part = texts[i: i + batch]
            probs, got_labels, lengths, ids = sess.run(None, {"text": _safe(part)})
            ref = served.predict(part)
            for j, t in enumerate(part):
                if ids[j, : lengths[j]].tolist() == tok.ids(t):
                    same += 1
                else:
                    report["differences"].append({"split": name, "text": t[:120], "reason": explain(t, tok),
                                                  "python": tok.first_tokens(t)[:12]})
            ok = [j for j, t in enumerate(part) if ids[j, : lengths[j]].tolist() == tok.ids(t)]
            if ok:  # probabilities compared where the ids agree (a different token list is another input)
                max_dp = max(max_dp, float(np.abs(probs[ok] - ref.probs[ok]).max()))
                label_mismatch += int(sum(got_labels[j] != labels[int(ref.probs[j].argmax())] for j in ok))
        report["splits"][name] = {"texts": len(texts), "same_ids": same, "max_abs_dp": max_dp,
                                  "label_mismatch": label_mismatch}
    return report


def _median_us(fn, reps: int) -> float:
    """Median CPU time of the calling thread per call, in µs. With 1 intra-op thread onnxruntime runs the graph in
    the calling thread, so this is the call's whole cost, and it does not count time spent waiting for a core
    (wall-clock medians on this shared 2-core machine moved by ±50% between runs)."""
    times = []
    for _ in range(reps):
        t = time.thread_time_ns()
        fn()
        times.append(time.thread_time_ns() - t)
    return float(np.median(times) / 1e3)


def _single_text_latency(served: OnnxClassifier, graph: ort.InferenceSession, plain: ort.InferenceSession,
                         texts: list[str], reps: int) -> dict:
    arrays = [np.array([t], dtype=object) for t in texts]
    out: dict[str, list[float]] = {"python_us": [], "graph_us": [], "python_tokenize_us": [],
                                   "graph_no_contractions_us": []}

    def per_text(fn) -> float:  # median over the texts of the median of `reps` calls
        return float(np.median([_median_us(lambda i=i: fn(i), max(3, reps // 10)) for i in range(len(texts))]))

    for _ in range(3):
        out["python_us"].append(per_text(lambda i: served.probabilities(*served.tokenizer.encode_batch([texts[i]]))))
        out["graph_us"].append(per_text(lambda i: graph.run(["probabilities"], {"text": arrays[i]})))
        out["python_tokenize_us"].append(per_text(lambda i: served.tokenizer.encode_batch([texts[i]])))
        out["graph_no_contractions_us"].append(per_text(lambda i: plain.run(["probabilities"], {"text": arrays[i]})))
    return {"batch": 1, **{k: float(np.median(v)) for k, v in out.items()}}


def latency(folder: Path, text_model: Path, texts: list[str], batches: tuple[int, ...], reps: int,
            no_contractions: onnx.ModelProto) -> list[dict]:
    served = OnnxClassifier(folder)  # the service's path: CompactTokenizer + id-input session
    graph, plain = session(str(text_model)), session(no_contractions)
    rows = []
    for b in batches:
        if b == 1:  # one text per call, a different one each time (about a third hold an apostrophe)
            latency_1 = _single_text_latency(served, graph, plain, texts, reps)
            rows.append(latency_1)
            continue
        part = (texts * (b // len(texts) + 1))[:b]
        arr = np.array(part, dtype=object)

        def python_path(part=part):
            ids, lengths = served.tokenizer.encode_batch(part)
            served.probabilities(ids, lengths)

        def graph_path(arr=arr):
            graph.run(["probabilities"], {"text": arr})

        def tokenize_only(part=part):
            served.tokenizer.encode_batch(part)

        def plain_path(arr=arr):
            plain.run(["probabilities"], {"text": arr})

        for f in (python_path, graph_path):
            f()
        py, gr, tk, pl = [], [], [], []
        for _ in range(5):  # interleaved rounds: every path sees the same machine load
            py.append(_median_us(python_path, reps))
            gr.append(_median_us(graph_path, reps))
            tk.append(_median_us(tokenize_only, reps))
            pl.append(_median_us(plain_path, reps))
        rows.append({"batch": b, "python_us": float(np.median(py)), "graph_us": float(np.median(gr)),
                     "python_tokenize_us": float(np.median(tk)), "graph_no_contractions_us": float(np.median(pl))})
    return rows


def throughput(folder: Path, text_model: Path, texts: list[str], batch: int, seconds: float,
               rounds: int = 3) -> list[dict]:
    """Texts per second with 1 and 2 threads calling one session (and one tokenizer) at once; the four
    measurements are interleaved over `rounds` rounds and the median kept (the machine's load drifts)."""
    served = OnnxClassifier(folder)
    graph = session(str(text_model))
    part = (texts * (batch // len(texts) + 1))[:batch]
    arr = np.array(part, dtype=object)

    def python_call():
        ids, lengths = served.tokenizer.encode_batch(part)
        served.probabilities(ids, lengths)

    def graph_call():
        graph.run(["probabilities"], {"text": arr})

    def measure(call, n_threads: int) -> float:
        counts = [0] * n_threads
        stop = time.perf_counter() + seconds

        def worker(k: int) -> None:
            while time.perf_counter() < stop:
                call()
                counts[k] += 1

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts) * batch / (time.perf_counter() - t0)

    paths = (("python tokenizer + ids session", python_call), ("string-input session", graph_call))
    runs: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for name, call in paths:
            for n_threads in (1, 2):
                runs.setdefault((name, n_threads), []).append(measure(call, n_threads))
    return [{"path": name, "threads": k, "texts_per_s": float(np.median(v))} for (name, k), v in runs.items()]


_RSS_PROBE = """
import sys, numpy as np, onnxruntime as ort
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096
kind, path = sys.argv[1], sys.argv[2]
before = rss()
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1
if kind == 'ids':
    from slimtext.runtime import OnnxClassifier
    before = rss()
    c = OnnxClassifier(path)
    c.predict(['a gorgeous , witty , seductive movie .'])
else:
    s = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    s.run(None, {'text': np.array(['a gorgeous , witty , seductive movie .'], dtype=object)})
print(rss() - before)
"""


def sizes_and_rss(folder: Path, text_model: Path) -> dict:
    def probe(kind: str, path: Path) -> int:
        out = subprocess.run([sys.executable, "-c", _RSS_PROBE, kind, str(path)], capture_output=True, text=True,
                             check=True, cwd=ROOT)
        return int(out.stdout.strip().splitlines()[-1])

    return {"model_onnx_bytes": (folder / "model.onnx").stat().st_size,
            "vocab_json_bytes": (folder / "vocab.json").stat().st_size,
            "text_model_bytes": text_model.stat().st_size,
            "rss_ids_model_plus_python_vocab": probe("ids", folder),
            "rss_text_model": probe("text", text_model)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=ROOT / "models" / "sst2-dan-lowrank",
                   help="an exported model folder (model.onnx, vocab.json, manifest.json)")
    p.add_argument("--datasets", type=Path, default=None, help="datasets root (default: slimtext.data's)")
    p.add_argument("--reps", type=int, default=30, help="calls per latency measurement")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per throughput measurement")
    p.add_argument("--skip-speed", action="store_true", help="parity, bytes and RSS only")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)

    folder = args.model
    tok = Tokenizer.load(folder / "vocab.json")
    labels = json.loads((folder / "manifest.json").read_text())["labels"]
    root = datasets_root(args.datasets)
    splits = {}
    for d in sorted(x for x in root.iterdir() if x.is_dir()):
        try:
            splits[d.name] = list(read_examples(split_path(d, "test")).texts)
        except (FileNotFoundError, ValueError):
            continue
    if "sst2" in splits:  # single texts: most have no apostrophe and take the graph's other branch
        splits["sst2, one per call"] = splits["sst2"]
    splits["hostile"] = hostile_strings()
    splits["hostile, one per call"] = hostile_strings()  # batches where no text has a contraction, or any token
    out: dict = {"model": str(folder), "onnxruntime": ort.__version__}
    t0 = time.perf_counter()
    out["parity"] = parity(folder, splits)
    out["parity_s"] = time.perf_counter() - t0
    print(f"## Parity ({folder.name} vocabulary, {out['parity_s']:.0f} s)\n")
    print("| split | texts | token ids equal | % | max abs Δp (equal ids) | label differences |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in out["parity"]["splits"].items():
        print(f"| {name} | {r['texts']:,} | {r['same_ids']:,} | {100 * r['same_ids'] / r['texts']:.3f} | "
              f"{r['max_abs_dp']:.1e} | {r['label_mismatch']} |")
    unreachable = [w for w in tok.itos if "\u03c2" in w or "\u0307" in w]
    touched = {name: sum(("\u0130" in t or "\u03a3" in t) for t in texts) for name, texts in splits.items()}
    out["lowercase_exposure"] = {"vocab_entries_with_final_sigma_or_U+0307": len(unreachable),
                                 "texts_with_U+0130_or_capital_sigma": touched}
    print(f"\nvocabulary entries the graph cannot produce (ς, U+0307 from lower-casing): {len(unreachable)}; "
          f"texts holding İ (U+0130) or Σ: {touched}")
    diffs = out["parity"]["differences"]
    print(f"\n{len(diffs)} texts with different token ids:\n")
    for d in diffs:
        print(f"- {d['split']}: {d['reason']}: {d['text']!r}")

    with tempfile.TemporaryDirectory() as tmp:
        text_model = Path(tmp) / "model.text.onnx"
        onnx.save(build_text_model(folder / "model.onnx", tok, labels), str(text_model))
        out["bytes_rss"] = sizes_and_rss(folder, text_model)
        b = out["bytes_rss"]
        print("\n## Bytes and memory\n")
        print("| | bytes | RSS growth after load + 1 call |\n|---|---:|---:|")
        print(f"| model.onnx + vocab.json (Python tokenizer) | {b['model_onnx_bytes']:,} + {b['vocab_json_bytes']:,} "
              f"| {b['rss_ids_model_plus_python_vocab'] / 1e6:.1f} MB |")
        print(f"| model.text.onnx (vocabulary + labels inside) | {b['text_model_bytes']:,} | "
              f"{b['rss_text_model'] / 1e6:.1f} MB |")
        if not args.skip_speed:
            sample = splits.get("sst2") or next(iter(splits.values()))
            texts = sample[:256]
            plain_tok = Tokenizer(tok.config.model_copy(update={"split_contractions": False}), tok.itos)
            plain = build_text_model(folder / "model.onnx", plain_tok, labels)
            out["loadavg_before"] = Path("/proc/loadavg").read_text().split()[:3]
            out["latency"] = latency(folder, text_model, texts, (1, 32, 256), args.reps, plain)
            print(f"\n## Latency (median CPU µs per call, 1 intra-op thread; load average before: "
                  f"{' '.join(out['loadavg_before'])})\n")
            print("| batch | Python tokenizer + ids session | of which tokenizing | string-input session | ratio | "
                  "string-input, contractions not split (scale only) |")
            print("|---:|---:|---:|---:|---:|---:|")
            for r in out["latency"]:
                print(f"| {r['batch']} | {r['python_us']:.0f} | {r['python_tokenize_us']:.0f} | {r['graph_us']:.0f} | "
                      f"{r['graph_us'] / r['python_us']:.2f}× | {r['graph_no_contractions_us']:.0f} |")
            out["throughput"] = throughput(folder, text_model, texts, 32, args.seconds)
            print("\n## Throughput (batch 32, texts/s, threads calling one session at once; median of 3 interleaved "
                  "rounds)\n")
            print("| path | 1 thread | 2 threads | 2 / 1 |\n|---|---:|---:|---:|")
            for name in dict.fromkeys(r["path"] for r in out["throughput"]):
                one, two = (next(r["texts_per_s"] for r in out["throughput"] if r["path"] == name
                                 and r["threads"] == k) for k in (1, 2))
                print(f"| {name} | {one:,.0f} | {two:,.0f} | {two / one:.2f}× |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
