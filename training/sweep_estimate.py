"""Expected wall time of a recorded sweep on N machines, from its cells' recorded times (issue 28).

    python -m training.sweep_estimate [--csv docs/results-d300.csv] [--grid training/grids/d300.json]
                                      [--machines 1 4 16 64] [--overhead 0]

Each cell's `seconds` in the results CSV is what it took on one CPU thread. The estimate schedules the cells
as the Ray backend does (training/sweep_ray.py): a group's first cell (the one that trains the group's full
model) before the group's other cells, one cell per machine at a time, the longest ready cell first, each
cell `--overhead` seconds longer (a Ray task loads its group's data itself). Printed per N: the total work
divided by N, the floor (the longest cell; and the longest chain, a group's first cell then its longest
other cell), and the simulated wall time.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
from pathlib import Path

from training.sweep import SweepConfig, in_grid_order


def _key(dataset: str, vocab: str, model: str, seed: str | int, method: str, reduction: str | float | None):
    r = "" if reduction in (None, "") else f"{float(reduction):g}"
    return dataset, vocab, model, int(seed), method, r


def cell_times(csv_path: Path, grid: Path) -> list[tuple[float, list[float]]]:
    """Per group: (its first cell's seconds, the other cells' seconds), from the CSV, in the grid's groups."""
    with open(csv_path) as f:
        seconds = {_key(r["dataset"], r["vocab"], r["model"], r["seed"], r["method"], r["reduction"]):
                   float(r["seconds"] or 0) for r in csv.DictReader(f)}
    cfg = SweepConfig.model_validate(json.loads(grid.read_text()))
    groups: dict[tuple, tuple[float, list[float]]] = {}  # a group split over blocks: one first cell in all
    missing = 0
    for (ds, extra, arch, seed), cells in in_grid_order(cfg):
        vocab = "extended" if extra else "train"
        for name, p in cells:
            t = seconds.get(_key(ds, vocab, arch, seed, name, p))
            missing += t is None
            if (ds, extra, arch, seed) in groups:
                groups[(ds, extra, arch, seed)][1].append(t or 0.0)
            else:
                groups[(ds, extra, arch, seed)] = (t or 0.0, [])
    if missing:
        print(f"note: {missing} cell(s) of the grid are not in {csv_path}: counted as 0 s")
    return list(groups.values())


def simulate(groups: list[tuple[float, list[float]]], machines: int, overhead: float = 0.0) -> float:
    """Wall time of list scheduling: first cells first, then a group's others once its first has finished."""
    ready = [(-(first + overhead), i, True) for i, (first, _) in enumerate(groups)]
    heapq.heapify(ready)
    running: list[tuple[float, int, bool]] = []  # (finish time, group, is first)
    now, free = 0.0, machines
    while ready or running:
        while free and ready:
            neg, i, first = heapq.heappop(ready)
            heapq.heappush(running, (now - neg, i, first))
            free -= 1
        now, i, first = heapq.heappop(running)
        free += 1
        if first:
            for t in groups[i][1]:
                heapq.heappush(ready, (-(t + overhead), i, False))
    return now


def table(groups: list[tuple[float, list[float]]], machines: list[int], overhead: float = 0.0) -> str:
    cells = [t + overhead for first, rest in groups for t in (first, *rest)]
    work, longest = sum(cells), max(cells)
    chain = max(first + max(rest, default=0.0) + overhead * (2 if rest else 1) for first, rest in groups)
    lines = [f"{len(cells)} cells in {len(groups)} groups, {work / 60:.0f} CPU-min of cells "
             f"(+{overhead:g} s each), longest cell {longest / 60:.1f} min, longest chain {chain / 60:.1f} min",
             "", "| machines | work / N (min) | floor: longest chain (min) | expected wall time (min) | "
             "speed-up vs 1 |", "|---:|---:|---:|---:|---:|"]
    one = simulate(groups, 1, overhead)
    for n in machines:
        wall = simulate(groups, n, overhead)
        lines.append(f"| {n} | {work / n / 60:.1f} | {chain / 60:.1f} | {wall / 60:.1f} | {one / wall:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", type=Path, default=Path("docs/results-d300.csv"))
    p.add_argument("--grid", type=Path, default=Path("training/grids/d300.json"))
    p.add_argument("--machines", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--overhead", type=float, default=0.0, help="seconds added to every cell (task start, data)")
    args = p.parse_args(argv)
    print(table(cell_times(args.csv, args.grid), args.machines, args.overhead))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
