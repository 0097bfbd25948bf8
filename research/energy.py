"""Energy-based rank against the reduction formula, on a sweep's trained full models.

The paper picks k from the target reduction p (k(|V|+d) ≈ (1−p)|V|d); the other common rule keeps the
smallest k whose top singular values hold a share of the energy sum(s²). This reads every cached full model
of a sweep (`<out_dir>/<dataset>-<vocab>-<model>-s<seed>/cache/full.pt`) and tabulates, per dataset and
model, the energy the 90% rank keeps and the rank (and so the reduction) each energy share would need:

    python -m research.energy --sweep runs/sweep-d300 --out docs/energy-d300.md
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

import torch

from research.tables import DATASETS
from training.checkpoint import load_model
from training.lowrank import rank_for_energy, rank_for_reduction

ENERGIES = (0.5, 0.6, 0.8, 0.9)


def energy_row(table: torch.Tensor, reduction: float, energies: tuple[float, ...] = ENERGIES) -> dict:
    """For one |V|×d table: the rank for `reduction`, the energy share it keeps, and for each energy share
    the rank it needs and the embedding reduction that rank gives (1 − k(|V|+d)/(|V|d))."""
    v, d = table.shape
    s = torch.linalg.svdvals(table.detach().double())  # (min(V, d),)
    share = (s**2).cumsum(0) / (s**2).sum()
    k = rank_for_reduction(v, d, reduction)
    out = {"vocab": v, "dim": d, "rank": k, "energy_at_rank": float(share[k - 1])}
    for e in energies:
        ke = rank_for_energy(s, e)
        out[f"k@{e:g}"] = ke
        out[f"reduction@{e:g}"] = 1 - ke * (v + d) / (v * d)
    return out


def collect(sweep_dir: Path, reduction: float) -> dict[tuple[str, str], list[dict]]:
    """(dataset, model) -> one energy_row per seed, from the sweep's cached full models."""
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in sorted(sweep_dir.glob("*/cache/full.pt")):
        ds, _vocab, model, _seed = path.parent.parent.name.rsplit("-", 3)
        net, _ = load_model(path)
        rows[(ds, model)].append(energy_row(net.embedding.table.weight, reduction))
    return rows


def table(rows: dict[tuple[str, str], list[dict]], reduction: float) -> list[str]:
    out = [f"| dataset | model | seeds | \\|V\\| × d | k at {reduction:.0%} | energy kept at that k | "
           + " | ".join(f"k for {e:.0%} energy (reduction)" for e in ENERGIES) + " |",
           "|---|---|---|---|---|---|" + "---|" * len(ENERGIES)]
    order = {name: i for i, name in enumerate(DATASETS)}
    for (ds, model), rs in sorted(rows.items(), key=lambda kv: (kv[0][1], order.get(kv[0][0], 99), kv[0][0])):
        mean = {key: statistics.fmean(r[key] for r in rs) for key in rs[0]}
        cells = " | ".join(f"{mean[f'k@{e:g}']:.0f} ({mean[f'reduction@{e:g}']:.1%})" for e in ENERGIES)
        out.append(f"| {ds} | {model} | {len(rs)} | {rs[0]['vocab']:,} × {rs[0]['dim']} | {rs[0]['rank']} | "
                   f"{mean['energy_at_rank']:.1%} | {cells} |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m research.energy", description=__doc__.splitlines()[0])
    p.add_argument("--sweep", type=Path, required=True, help="a sweep's out_dir (its cached full models)")
    p.add_argument("--reduction", type=float, default=0.9)
    p.add_argument("--out", type=Path, default=None, help="write a markdown table here (default: print it)")
    args = p.parse_args(argv)
    if not 0 < args.reduction < 1:
        p.error("--reduction must be in (0, 1)")
    rows = collect(args.sweep, args.reduction)
    if not rows:
        p.error(f"no cached full models under {args.sweep}")
    lines = [f"# Energy-based rank against the {args.reduction:.0%} reduction formula", "",
             f"Made by `python -m research.energy --sweep {args.sweep}`: the SVD of every trained full model's "
             "embedding table in the sweep (means over seeds). The energy of rank k is the share of sum(s²) its top "
             "k singular values hold; the reduction of rank k is 1 − k(|V|+d)/(|V|·d).", "",
             *table(rows, args.reduction), ""]
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
