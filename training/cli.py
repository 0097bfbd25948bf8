"""Command line (`python -m training ...`, also installed as `slimtext`).

    run       train full, compress online, re-train, export full/lowrank/int8 (the `make run` job)
    train     train a full model on any TSV/CSV/JSONL dataset folder into a run folder
    compress  apply a compression method (online, noretrain, offline, int8, ...) to a train run
    export    write a servable model folder (model.onnx, vocab.json, manifest.json) from a run
    evaluate  accuracy of a run folder or an exported model folder on a split or on any file
    sweep     datasets x model x method x reduction x seeds, resumable, one results CSV
    report    results CSV -> docs/results.md and accuracy-vs-bytes plots
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.train import FitConfig


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None, help="dataset folder with train/dev/test .tsv/.csv/.jsonl")
    p.add_argument("--dataset", default=None, help="dataset name under the dataset root (instead of --data)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="dataset root (default: $SLIMTEXT_DATASETS, else ../shared/datasets)")
    p.add_argument("--text-col", default="text")
    p.add_argument("--label-col", default="label")
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N training examples")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slimtext", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train full, compress online, re-train, export full/lowrank/int8")
    r.add_argument("--dataset", default="sst2", help="folder name under the dataset root")
    r.add_argument("--data-root", type=Path, default=None,
                   help="dataset root (default: $SLIMTEXT_DATASETS, else ../shared/datasets)")
    r.add_argument("--text-col", default="text")
    r.add_argument("--label-col", default="label")
    r.add_argument("--out", type=Path, default=Path("models"), help="models folder to write into")
    r.add_argument("--name", default=None, help="artifact name prefix (default <dataset>-dan)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--reduction", type=float, default=0.9, help="target embedding reduction p in [0, 1)")
    r.add_argument("--epochs", type=int, default=None, help="epochs of the first training")
    r.add_argument("--retrain-epochs", type=int, default=None, help="epochs of re-training after compression")
    r.add_argument("--limit-train", type=int, default=None, help="use only the first N training examples")
    r.add_argument("--no-glove", action="store_true", help="random embedding initialisation")
    r.add_argument("--glove-path", type=Path, default=None, help="a GloVe text file instead of the packaged 6B-50d")
    r.add_argument("--json", action="store_true", help="print the manifests as JSON at the end")

    t = sub.add_parser("train", help="train a full model into a run folder")
    _data_args(t)
    t.add_argument("--model", default="dan", choices=["dan", "cnn", "bilstm"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=None, help="default: the model's (training.methods.TRAIN)")
    t.add_argument("--vocab-extra", type=int, default=0, help="add the N most frequent GloVe words to the vocabulary")
    t.add_argument("--no-glove", action="store_true", help="random embedding initialisation")
    t.add_argument("--out", type=Path, required=True, help="run folder to write")
    t.add_argument("--threads", type=int, default=1, help="torch threads (1: the same seed gives the same numbers)")

    c = sub.add_parser("compress", help="compress a trained run (see --method)")
    c.add_argument("--run", type=Path, required=True, help="a `train` run folder")
    c.add_argument("--method", default="online", help="online, noretrain, offline, int8, int4, online+int8, ...")
    c.add_argument("--reduction", type=float, default=None, help="target embedding reduction p (low-rank methods)")
    c.add_argument("--retrain-epochs", type=int, default=None)
    c.add_argument("--out", type=Path, required=True, help="run folder to write")
    c.add_argument("--threads", type=int, default=1, help="torch threads (1: the same seed gives the same numbers)")

    e = sub.add_parser("export", help="write a servable model folder from a run")
    e.add_argument("--run", type=Path, required=True)
    e.add_argument("--out", type=Path, default=Path("models"), help="models folder")
    e.add_argument("--name", required=True, help="model name, [a-z0-9][a-z0-9._-]*")
    e.add_argument("--int8", action="store_true", help="also quantize with onnxruntime (kind int8)")

    v = sub.add_parser("evaluate", help="accuracy of a run folder or an exported model folder")
    v.add_argument("target", type=Path, help="run folder or exported model folder")
    v.add_argument("--split", default="test", choices=["dev", "test"], help="split of the run's own dataset")
    v.add_argument("--file", type=Path, default=None, help="any labelled .tsv/.csv/.jsonl file instead")
    v.add_argument("--text-col", default="text")
    v.add_argument("--label-col", default="label")

    s = sub.add_parser("sweep", help="run a grid of cells (resumable) into one results CSV")
    s.add_argument("--grid", type=Path, default=None, help="sweep config JSON (e.g. training/grids/full.json)")
    s.add_argument("--datasets", nargs="+", default=None, help="instead of --grid: one block of these")
    s.add_argument("--models", nargs="+", default=["dan"])
    s.add_argument("--methods", nargs="+", default=["full", "online"])
    s.add_argument("--reductions", nargs="+", type=float, default=[0.9])
    s.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    s.add_argument("--data-root", type=Path, default=None)
    s.add_argument("--epochs", type=int, default=None, help="override every model's training epochs")
    s.add_argument("--retrain-epochs", type=int, default=None, help="override every model's re-training epochs")
    s.add_argument("--limit-train", type=int, default=None)
    s.add_argument("--out", type=Path, default=None, help="run folder (default runs/sweep)")
    s.add_argument("--csv", type=Path, default=None, help="results CSV (default <out>/results.csv)")
    s.add_argument("--workers", type=int, default=None)

    o = sub.add_parser("report", help="results CSV -> results.md and plots")
    o.add_argument("--csv", type=Path, default=Path("docs/results.csv"))
    o.add_argument("--out", type=Path, default=Path("docs"), help="folder for results.md and the PNGs")
    o.add_argument("--timing", type=Path, default=None, help="a sweep's timing.json, quoted in the report")
    o.add_argument("--config", type=Path, default=None, help="a sweep's config.json: what ran, what was cut")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    command = {"train": _train, "compress": _compress, "export": _export, "evaluate": _evaluate,
               "sweep": _sweep, "report": _report}[args.command]
    try:
        return command(args)
    except (ValueError, FileNotFoundError) as e:  # configuration errors: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from training.pipeline import RunConfig, run  # torch is imported only once arguments parse

    base = RunConfig()
    cfg = RunConfig(
        dataset=args.dataset, data_root=args.data_root, text_col=args.text_col, label_col=args.label_col,
        out_dir=args.out, name=args.name, seed=args.seed, reduction=args.reduction, glove=not args.no_glove,
        glove_path=args.glove_path, limit_train=args.limit_train,
        train=_with_epochs(base.train, args.epochs), retrain=_with_epochs(base.retrain, args.retrain_epochs),
    )
    manifests = run(cfg).manifests
    if args.json:
        print(json.dumps([m.model_dump(mode="json", exclude={"training"}) for m in manifests], indent=2))
    return 0


def _epoch_bar(total: int, desc: str):
    """A tqdm bar advanced by the training loop's once-per-epoch log line."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr)

    def log(line: str) -> None:
        bar.update(1)
        bar.set_postfix_str(" ".join(line.split()[2:]))
    return bar, log


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _train(args) -> int:
    _threads(args.threads)
    from training.methods import TRAIN
    from training.runs import DataConfig, TrainConfig, train_run

    data = DataConfig(data=args.data, dataset=args.dataset, data_root=args.data_root, text_col=args.text_col,
                      label_col=args.label_col, limit_train=args.limit_train, vocab_extra=args.vocab_extra,
                      glove=not args.no_glove)
    cfg = TrainConfig(data=data, model=args.model, seed=args.seed,
                      fit=_with_epochs(TRAIN[args.model], args.epochs))
    bar, log = _epoch_bar(cfg.fit.epochs, f"train {args.model}")
    with bar:
        results = train_run(cfg, args.out, log=log)
    print(_summary(results))
    return 0


def _compress(args) -> int:
    _threads(args.threads)
    from training.methods import METHODS, RETRAIN
    from training.runs import CompressConfig, compress_run, load_train_config

    retrain = _with_epochs(RETRAIN[load_train_config(args.run).model], args.retrain_epochs)
    cfg = CompressConfig(source=args.run, method=args.method, reduction=args.reduction, retrain=retrain)
    method = METHODS[cfg.method]
    epochs = retrain.model_copy(update=method.retrain).epochs if method.kind in ("online", "online_quant") else 0
    bar, log = _epoch_bar(epochs, f"compress {args.method}")
    with bar:
        results = compress_run(cfg, args.out, log=log)
    print(_summary(results))
    return 0


def _export(args) -> int:
    from training.exporting import export_run

    manifest = export_run(args.run, args.out, args.name, int8=args.int8)
    print(f"{args.out / manifest.name}: {manifest.kind}, {manifest.onnx_bytes:,} bytes, "
          f"dev {manifest.accuracy.dev:.4f}, test {manifest.accuracy.test:.4f}")
    return 0


def _evaluate(args) -> int:
    from training.exporting import evaluate_target

    result = evaluate_target(args.target, args.split, args.file, args.text_col, args.label_col)
    print(json.dumps(result, indent=2))
    return 0


def _sweep(args) -> int:
    from tqdm import tqdm

    from training.methods import RETRAIN, TRAIN
    from training.sweep import Block, SweepConfig, run_sweep

    if (args.grid is None) == (args.datasets is None):
        raise ValueError("give either --grid FILE or --datasets ...")
    if args.grid is not None:
        base = json.loads(args.grid.read_text())
    else:
        base = {"blocks": [Block(datasets=args.datasets, models=args.models, methods=args.methods,
                                 reductions=args.reductions, seeds=args.seeds).model_dump()]}
    over = {k: v for k, v in {"data_root": args.data_root, "limit_train": args.limit_train, "out_dir": args.out,
                              "csv": args.csv, "workers": args.workers}.items() if v is not None}
    models = {m for b in base["blocks"] for m in b.get("models", ["dan"])}
    if args.epochs is not None:
        over["train"] = {m: TRAIN[m].model_copy(update={"epochs": args.epochs}) for m in models}
    if args.retrain_epochs is not None:
        over["retrain"] = {m: RETRAIN[m].model_copy(update={"epochs": args.retrain_epochs}) for m in models}
    cfg = SweepConfig(**{**base, **over})
    with tqdm(desc="sweep", unit="cell", file=sys.stderr) as bar:
        def progress(n: int, total: int) -> None:
            bar.total = total
            bar.update(n)
        rows = run_sweep(cfg, progress)
    print(f"{len(rows)} cells -> {cfg.csv_path}")
    return 0


def _report(args) -> int:
    from training.report import write_report

    paths = write_report(args.csv, args.out, args.timing, args.config)
    print("\n".join(str(p) for p in paths))
    return 0


def _summary(results: dict) -> str:
    keys = ["dataset", "model", "method", "reduction", "rank", "dev_acc", "test_acc", "params", "model_bytes"]
    return json.dumps({k: results.get(k) for k in keys})


def _with_epochs(fit: FitConfig, epochs: int | None) -> FitConfig:
    return fit if epochs is None else fit.model_copy(update={"epochs": epochs})


if __name__ == "__main__":
    sys.exit(main())
