"""The `slimtext` command. Serving-side commands need only the `serve` extra (onnxruntime):

    slimtext predict MODEL_DIR [--file F] [-k K]      texts (stdin, .txt, or a .csv/.tsv/.jsonl column) -> JSON lines
    slimtext evaluate MODEL_DIR [--file F | --split]  accuracy, per-class precision/recall/F1, confusion matrix

The training commands (run, train, compress, export, sweep, report, teacher, and evaluate on a run folder)
need the `train` extra and run `python -m training ...` in a child process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from slimtext import __version__
from slimtext.manifest import MANIFEST_FILE

TRAINING_COMMANDS = ("run", "train", "compress", "export", "sweep", "report", "teacher")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slimtext", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = ",".join(("predict", "evaluate", *TRAINING_COMMANDS))
    sub = p.add_subparsers(dest="command", required=True, metavar="{" + commands + "}")
    pr = sub.add_parser("predict", help="classify texts with an exported model folder, one JSON line per text",
                        description="Classify texts; writes one JSON object a line: label, score, probabilities "
                                    "(and top_k with -k > 1). Reads one text a line from stdin unless --file.")
    pr.add_argument("model", type=Path, help="exported model folder (model.onnx, vocab.json, manifest.json)")
    pr.add_argument("--file", type=Path, default=None,
                    help=".txt (one text a line) or .csv/.tsv/.jsonl (the --text-col column); default: stdin")
    pr.add_argument("--text-col", default="text", help="column holding the text in .csv/.tsv/.jsonl (default text)")
    pr.add_argument("-k", type=int, default=1, help="also list the k most likely labels (-1: all)")
    pr.add_argument("--batch-size", type=int, default=256, help="texts per onnxruntime run")
    pr.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")

    ev = sub.add_parser("evaluate", help="accuracy, per-class precision/recall/F1 and confusion matrix",
                        description="Score an exported model folder (onnxruntime only) on a labelled file, or on a "
                                    "split of the dataset its manifest records. A training run folder is "
                                    "evaluated by `python -m training evaluate` (needs the train extra).")
    ev.add_argument("target", type=Path, help="exported model folder (or a training run folder)")
    ev.add_argument("--file", type=Path, default=None, help="labelled .tsv/.csv/.jsonl file")
    ev.add_argument("--split", default="test", choices=["dev", "test"],
                    help="without --file: this split of the model's own dataset")
    ev.add_argument("--text-col", default=None, help="text column of --file (default: the training data's)")
    ev.add_argument("--label-col", default=None, help="label column of --file (default: the training data's)")
    ev.add_argument("--format", default="json", choices=["json", "text"], help="JSON (default) or text tables")
    for name in TRAINING_COMMANDS:
        sub.add_parser(name, help="training (needs the train extra): see `slimtext " + name + " --help`",
                       add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and (argv[0] in TRAINING_COMMANDS or _is_run_evaluation(argv)):
        return _training(argv)
    args = _parser().parse_args(argv)
    try:
        if args.command == "predict":
            return _predict(args)
        return _evaluate(args)
    except (ValueError, FileNotFoundError, TypeError) as e:  # includes ModelLoadError: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `slimtext predict ... | head`
        sys.stderr.close()
        return 0


def _is_run_evaluation(argv: list[str]) -> bool:
    """`evaluate RUN_FOLDER`: a training run (PyTorch checkpoint), not an exported model folder."""
    if argv[0] != "evaluate":
        return False
    target = next((a for a in argv[1:] if not a.startswith("-")), None)
    return target is not None and Path(target).is_dir() and not (Path(target) / MANIFEST_FILE).exists()


def _installed(module: str) -> bool:
    if module in sys.modules:  # (None there: blocked)
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def _training(argv: list[str]) -> int:
    """The training commands are `python -m training ...` in a child process: this torch-free package imports
    nothing from training/ (nor service/)."""
    missing = [m for m in ("training", "torch") if not _installed(m)]
    if missing:
        print(f"error: `slimtext {argv[0]}` needs the train extra (pip install 'slimtext[train]'): "
              f"{' and '.join(missing)} not installed", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, "-m", "training", *argv])


def _predict(args) -> int:
    from slimtext.api import load
    from slimtext.runtime import ModelLoadError
    from slimtext.texts import batches, lines, read_texts

    if args.k == 0 or args.k < -1:
        raise ValueError(f"-k must be >= 1 or -1 (every label), not {args.k}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, not {args.batch_size}")
    try:
        clf = load(args.model, threads=args.threads, batch_size=args.batch_size)
    except ModelLoadError as e:
        raise ValueError(str(e)) from e
    if args.file is not None:
        texts, size = read_texts(args.file, args.text_col), args.batch_size
    else:  # interactive: answer every line at once; piped: in batches
        texts, size = lines(sys.stdin), 1 if sys.stdin.isatty() else args.batch_size
    labels = clf.labels
    k = len(labels) if args.k == -1 else min(args.k, len(labels))
    out = sys.stdout
    for batch in batches(texts, size):
        probs = clf.predict_proba(batch)
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            obj = {"label": labels[best], "score": row[best], "probabilities": dict(zip(labels, row, strict=True))}
            if k > 1:
                top = sorted(range(len(row)), key=lambda j, r=row: -r[j])[:k]
                obj["top_k"] = [{"label": labels[j], "score": row[j]} for j in top]
            out.write(json.dumps(obj) + "\n")
        out.flush()
    return 0


def _evaluate(args) -> int:
    from slimtext.evaluate import evaluate_folder, format_report
    from slimtext.runtime import ModelLoadError

    try:
        result = evaluate_folder(args.target, args.file, args.split, args.text_col, args.label_col)
    except ModelLoadError as e:
        raise ValueError(str(e)) from e
    print(format_report(result) if args.format == "text" else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
