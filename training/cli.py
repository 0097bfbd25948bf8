"""Command line: `python -m training run ...` (also installed as `slimtext`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.train import FitConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slimtext", description=__doc__)
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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


def _with_epochs(fit: FitConfig, epochs: int | None) -> FitConfig:
    return fit if epochs is None else fit.model_copy(update={"epochs": epochs})


if __name__ == "__main__":
    sys.exit(main())
