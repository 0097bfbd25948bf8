"""The tables every research write-up shares: the results CSV read and grouped (mean ± std over seeds),
the dev-chosen re-training recipe, and the markdown tables of the headline, by-reduction and simple kinds.
research/report.py (d = 50), research/report_d300.py (d = 300) and research/energy.py build on it."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from training.architectures import ARCHITECTURES
from training.methods import in_group

DATASETS = ["sst2", "sst5", "trec", "mr", "subj"]

# re-training recipes for the DAN at 90%: candidates, one chosen per dataset on dev (the methods of group `recipes`
# in training/variants/, in their order: it breaks dev ties)
ONLINE_RECIPES = in_group("recipes")


HEADLINE = [("full", None), ("online", 0.9), ("online*", 0.9), ("noretrain", 0.9), ("offline", 0.9),
            ("int8", None), ("int4", None), ("online+int8", 0.9)]


_NUM = {"reduction", "dev_acc", "test_acc", "energy", "embedding_reduction_params", "embedding_bytes_reduction",
        "model_bytes_reduction", "seconds"}


_INT = {"vocab_size", "dim", "seed", "bits", "rank", "params", "model_bytes", "embedding_bytes"}


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in list(r):
            if r[k] == "":
                r[k] = None
            elif k in _NUM:
                r[k] = float(r[k])
            elif k in _INT:
                r[k] = int(float(r[k]))
    return rows


Key = tuple[str, str, str, str, float | None]  # dataset, vocab, model, method, reduction


class Stats:
    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows
        self.n = len(rows)
        self.test = [r["test_acc"] * 100 for r in rows]
        self.dev = [r["dev_acc"] * 100 for r in rows]
        self.first = rows[0]

    @staticmethod
    def _mean_std(xs: list[float]) -> tuple[float, float]:
        return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0

    @property
    def test_mean(self) -> float:
        return statistics.fmean(self.test)

    @property
    def dev_mean(self) -> float:
        return statistics.fmean(self.dev)

    def fmt(self, which: str = "test") -> str:
        m, s = self._mean_std(self.test if which == "test" else self.dev)
        return f"{m:.2f} ± {s:.2f}"


def aggregate(rows: list[dict[str, Any]]) -> dict[Key, Stats]:
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["vocab"], r["model"], r["method"], r["reduction"])].append(r)
    return {k: Stats(sorted(v, key=lambda r: r["seed"])) for k, v in groups.items()}


def choose_online(agg: dict[Key, Stats], dataset: str, model: str, vocab: str = "train",
                  reduction: float = 0.9) -> str | None:
    """The re-training recipe with the best mean dev accuracy (ties: the first listed)."""
    found = [(agg[(dataset, vocab, model, m, reduction)].dev_mean, -i, m) for i, m in enumerate(ONLINE_RECIPES)
             if (dataset, vocab, model, m, reduction) in agg]
    return max(found)[2] if found else None


def kb(b: float) -> str:
    return f"{b / 1024:,.0f} KiB" if b < 1024 * 1024 else f"{b / 1024 / 1024:,.2f} MiB"


def order(values, preferred):
    return [v for v in preferred if v in values] + sorted(set(values) - set(preferred))


def headline_tables(agg: dict[Key, Stats]) -> list[str]:
    out = []
    datasets = order({k[0] for k in agg}, ["sst2", "sst5", "trec", "mr", "subj"])
    for ds in datasets:
        out += [f"### {ds}", "", "| model | method | test acc (%) | Δ vs full | dev acc (%) | rank | model bytes | "
                "embedding bytes | embedding reduction |", "|---|---|---|---|---|---|---|---|---|"]
        for model in order({k[2] for k in agg if k[0] == ds}, list(ARCHITECTURES)):
            full = agg.get((ds, "train", model, "full", None))
            for method, p in HEADLINE:
                label, name = method, method
                if method == "online*":
                    name = choose_online(agg, ds, model)
                    if name is None or name == "online":
                        continue
                    label = f"online, dev-chosen ({name})"
                st = agg.get((ds, "train", model, name, p))
                if st is None:
                    continue
                r = st.first
                delta = f"{st.test_mean - full.test_mean:+.2f}" if full else ""
                shown = f"{label} @ {p:.0%}" if p else label
                out.append(f"| {model} | {shown} | {st.fmt()} | {delta} | {st.fmt('dev')} | {r['rank'] or '-'} | "
                           f"{kb(r['model_bytes'])} | {kb(r['embedding_bytes'])} | "
                           f"{r['embedding_bytes_reduction']:.1%} |")
        out.append("")
    return out


def by_reduction_table(agg: dict[Key, Stats], model: str = "dan", low: str = "online") -> list[str]:
    ps = sorted({k[4] for k in agg if k[2] == model and k[3] == low and k[4] is not None})
    datasets = order({k[0] for k in agg if k[2] == model}, ["sst2", "sst5", "trec", "mr", "subj"])
    out = ["| dataset | method | full | " + " | ".join(f"p = {p:.0%}" for p in ps) + " |",
           "|---|---|---|" + "---|" * len(ps)]
    for ds in datasets:
        full = agg.get((ds, "train", model, "full", None))
        for m in (low, "noretrain"):
            cells = [agg[(ds, "train", model, m, p)].fmt() if (ds, "train", model, m, p) in agg else "-" for p in ps]
            out.append(f"| {ds} | {m} | {full.fmt() if full else '-'} | " + " | ".join(cells) + " |")
    ranks = ["| rank k (sst2) | | | " + " | ".join(
        str(agg[("sst2", "train", model, low, p)].first["rank"]) if ("sst2", "train", model, low, p) in agg
        else "-" for p in ps) + " |"]
    return out + ranks


def simple_table(agg: dict[Key, Stats], methods: list[tuple[str, float | None]], vocab: str = "train",
                 models: tuple[str, ...] | None = None, datasets: list[str] | None = None) -> list[str]:
    out = ["| dataset | model | method | rank | test acc (%) | dev acc (%) | model bytes | embedding bytes | "
           "embedding reduction |", "|---|---|---|---|---|---|---|---|---|"]
    for ds in datasets or order({k[0] for k in agg}, ["sst2", "sst5", "trec", "mr", "subj"]):
        for model in models or order({k[2] for k in agg if k[0] == ds}, list(ARCHITECTURES)):
            for m, p in methods:
                st = agg.get((ds, vocab, model, m, p))
                if st is None:
                    continue
                r = st.first
                out.append(f"| {ds} | {model} | {m}{f' @ {p:.0%}' if p else ''} | {r['rank'] or '-'} | {st.fmt()} | "
                           f"{st.fmt('dev')} | {kb(r['model_bytes'])} | {kb(r['embedding_bytes'])} | "
                           f"{r['embedding_bytes_reduction']:.1%} |")
    return out
