"""`report`: the sweep's results CSV -> docs/results.md (tables, mean ± std over seeds) and plots.

Every number comes from the CSV; nothing is typed in. Choices between re-training recipes are made
on mean dev accuracy, and only then is the test accuracy of the chosen recipe read.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from research.tables import (
    HEADLINE,
    ONLINE_RECIPES,
    Key,
    Stats,
    aggregate,
    by_reduction_table,
    choose_online,
    headline_tables,
    load_rows,
    order,
    simple_table,
)
from training.architectures import ARCHITECTURES
from training.methods import in_group
from training.sizes import Shape, flops, fp32_bytes, quantized_bytes, total_params

SCHEDULES = in_group("schedules")  # the re-training schedules compared (training/variants/), in column order


def gap_table(agg: dict[Key, Stats]) -> tuple[list[str], list[str]]:
    """DAN at 90%: the dev-chosen recipe against full, no-retrain and offline. Returns (table, misses)."""
    out = ["| dataset | full | " + " | ".join(f"{m} dev / test" for m in ONLINE_RECIPES) +
           " | chosen on dev | its test | loss vs full (points; − = gain) | no-retrain | offline | ≤ 1.0 | ≤ 0.5 "
           "| beats both |",
           "|---|---|" + "---|" * len(ONLINE_RECIPES) + "---|---|---|---|---|---|---|---|"]
    misses = []
    for ds in order({k[0] for k in agg if k[2] == "dan"}, ["sst2", "sst5", "trec", "mr", "subj"]):
        full = agg.get((ds, "train", "dan", "full", None))
        chosen = choose_online(agg, ds, "dan")
        if full is None or chosen is None:
            continue
        cells = []
        for m in ONLINE_RECIPES:
            st = agg.get((ds, "train", "dan", m, 0.9))
            cells.append(f"{st.dev_mean:.2f} / {st.test_mean:.2f}" if st else "-")
        st = agg[(ds, "train", "dan", chosen, 0.9)]
        loss = full.test_mean - st.test_mean
        nr, off = agg.get((ds, "train", "dan", "noretrain", 0.9)), agg.get((ds, "train", "dan", "offline", 0.9))
        beats = all(x is not None and st.test_mean > x.test_mean for x in (nr, off))
        out.append(f"| {ds} | {full.fmt()} | " + " | ".join(cells) + f" | {chosen} | {st.fmt()} | {loss:+.2f} | "
                   f"{nr.fmt() if nr else '-'} | {off.fmt() if off else '-'} | {'yes' if loss <= 1.0 else 'NO'} | "
                   f"{'yes' if loss <= 0.5 else 'no'} | {'yes' if beats else 'NO'} |")
        if loss > 1.0:
            misses.append(f"{ds}: full {full.test_mean:.2f}, online at 90% ({chosen}, chosen on dev) "
                          f"{st.test_mean:.2f}, a loss of {loss:.2f} points")
        if not beats:
            misses.append(f"{ds}: online ({st.test_mean:.2f}) does not beat both no-retrain "
                          f"({nr.test_mean if nr else float('nan'):.2f}) and offline "
                          f"({off.test_mean if off else float('nan'):.2f})")
    return out, misses


def schedule_table(agg: dict[Key, Stats]) -> list[str]:
    datasets = [d for d in ("sst2", "trec") if any((d, "train", "dan", s, 0.9) in agg for s in SCHEDULES)]
    out = ["| schedule (re-training, DAN, 90%, no distillation) | " +
           " | ".join(f"{d} dev | {d} test" for d in datasets) + " |",
           "|---|" + "---|---|" * len(datasets)]
    for s in SCHEDULES:
        cells = []
        for d in datasets:
            st = agg.get((d, "train", "dan", s, 0.9))
            cells += [st.fmt("dev"), st.fmt()] if st else ["-", "-"]
        out.append(f"| {s.removeprefix('sched-')} | " + " | ".join(cells) + " |")
    return out


def size_table(rows: list[dict[str, Any]], dataset: str = "sst2", tokens: int = 20) -> list[str]:
    """Analytic parameters, bytes and FLOPs (training/sizes.py) for the sweep's vocabulary of `dataset`."""
    out = [f"| model | method | rank | parameters | bytes | FLOPs / sentence ({tokens} tokens) |",
           "|---|---|---|---|---|---|"]
    for model in ARCHITECTURES:
        r = next((r for r in rows if r["dataset"] == dataset and r["model"] == model and r["vocab"] == "train"), None)
        if r is None:
            continue
        k = next((x["rank"] for x in rows if x["dataset"] == dataset and x["model"] == model
                  and x["method"] == "online" and x["reduction"] == 0.9), None)
        n_classes = 2 if dataset in ("sst2", "mr", "subj") else 5 if dataset == "sst5" else 6
        full = Shape(arch=model, vocab=r["vocab_size"], dim=r["dim"], n_classes=n_classes)
        low = full.model_copy(update={"rank": k})
        variants = [("full", full, fp32_bytes(full)), ("int8 embedding", full, quantized_bytes(full, 8, "embedding")),
                    ("int8 model", full, quantized_bytes(full, 8, "model"))]
        if k:
            variants += [("online @ 90%", low, fp32_bytes(low)),
                         ("online @ 90% + int8 model", low, quantized_bytes(low, 8, "model"))]
        for name, s, b in variants:
            out.append(f"| {model} | {name} | {s.rank or '-'} | {total_params(s):,} | {b:,} | {flops(s, tokens):,} |")
    return out


def _bytes_label(b: float, _pos=None) -> str:
    """Byte axis ticks in KiB / MiB."""
    if b >= 2**20:
        return f"{b / 2**20:g} MiB"
    return f"{b / 2**10:g} KiB"


def _point_label(method: str, reduction: float | None) -> str:
    """What tells the points of one curve apart: the reduction (90%) or the bit width (8b)."""
    if reduction is not None:
        return f"{reduction:.0%}"
    bits = method.split("-")[0].removeprefix("int")
    return f"{bits}b" if bits.isdigit() else ""


def plot(agg: dict[Key, Stats], out_dir: Path, agg300: dict[Key, Stats] | None = None) -> list[Path]:
    """One figure per dataset, one panel per model; `agg300` (a d = 300 sweep) drawn dashed beside d = 50."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    paths = []
    datasets = order({k[0] for k in agg}, ["sst2", "sst5", "trec", "mr", "subj"])
    curves = {  # label -> (method names, reductions or None), drawn as one line each
        "online low-rank + re-train": (["online"], True),
        "low-rank, no re-train": (["noretrain"], True),
        "offline low-rank (frozen)": (["offline"], True),
        "quantized embedding (8/4/2 bit)": (["int8", "int4", "int2"], False),
        "quantized model (8/4/2 bit)": (["int8-model", "int4-model", "int2-model"], False),
        "online + int8 factors": (["online+int8"], True),
        "online + int8 model": (["online+int8-model"], True),
    }
    colors = dict(zip(curves, plt.get_cmap("tab10").colors, strict=False))
    if agg300:
        from research.report_d300 import plotted

        agg300 = plotted(agg300)
    layers = [(agg, "-", "black", "")] + ([(agg300, "--", "grey", " (d=300)")] if agg300 else [])
    for ds in datasets:
        models = order({k[2] for a in (agg, agg300 or {}) for k in a if k[0] == ds and k[1] == "train"},
                        list(ARCHITECTURES))
        # one y-range for the whole figure, so the panels compare at a glance
        fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.8), squeeze=False, sharey=True)
        handles: dict[str, object] = {}
        for ax, model in zip(axes[0], models, strict=True):
            for layer, ls, star, suffix in layers:
                for label, (methods, by_p) in curves.items():
                    pts = sorted((st.first["model_bytes"], st.test_mean, statistics.stdev(st.test) if st.n > 1
                                  else 0, _point_label(k[3], k[4]))
                                 for k, st in layer.items() if k[0] == ds and k[1] == "train" and k[2] == model
                                 and k[3] in methods and (k[4] is not None) == by_p)
                    if pts:
                        xs, ys, es, names = zip(*pts, strict=True)
                        bar = ax.errorbar(xs, ys, yerr=es, marker="o", ms=4, capsize=2, label=label, ls=ls,
                                          color=colors[label])
                        handles.setdefault(label, bar)
                        for x, y, name in zip(xs, ys, names, strict=True):
                            ax.annotate(name, (x, y), textcoords="offset points", xytext=(3, 4), fontsize=6,
                                        color=colors[label])
                full = layer.get((ds, "train", model, "full", None))
                if full:
                    handles[f"full model{suffix}"] = ax.errorbar(
                        [full.first["model_bytes"]], [full.test_mean], marker="*", ms=12, color=star, ls="none",
                        label=f"full model{suffix}")
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_locator(LogLocator(base=2))
            ax.xaxis.set_major_formatter(FuncFormatter(_bytes_label))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.tick_params(axis="x", labelsize=7, labelrotation=30)
            ax.set_xlabel("model file size (log scale)")
            ax.set_title(f"{ds} — {model}")
            ax.grid(alpha=0.3)
        if agg300:  # what the line styles mean
            from matplotlib.lines import Line2D

            handles["d = 50: GloVe 6B-50d (solid)"] = Line2D([], [], color="black", ls="-")
            handles["d = 300: en_vectors (dashed)"] = Line2D([], [], color="grey", ls="--")
        axes[0][0].set_ylabel("test accuracy (%), mean ± std of seeds")
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=4, fontsize=8, frameon=False)
        dims = "; solid: d = 50, dashed: d = 300" if agg300 else ""
        fig.suptitle(f"{ds}: accuracy against size (better: up and to the left; point labels: "
                     f"embedding reduction or bits{dims})", fontsize=10)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        path = out_dir / f"accuracy_vs_bytes_{ds}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def scope_section(config: dict[str, Any]) -> list[str]:
    """What the sweep ran (from its config.json), and what it left out of the issue's full grid."""
    from training.architectures import get_architecture

    full_grid = [0.5, 0.75, 0.9, 0.95, 0.98]
    out = ["## What ran", "", "| datasets | models | methods | target reductions | seeds |", "|---|---|---|---|---|"]
    per_model: dict[str, set[float]] = defaultdict(set)
    for b in config["blocks"]:
        extra = f" (+{b['vocab_extra']:,} GloVe words)" if b.get("vocab_extra") else ""
        out.append(f"| {', '.join(b['datasets'])}{extra} | {', '.join(b['models'])} | {', '.join(b['methods'])} | "
                   f"{', '.join(f'{p:.0%}' for p in b['reductions'])} | {', '.join(map(str, b['seeds']))} |")
        for m in b["models"]:
            per_model[m].update(b["reductions"])
    out += ["", "Epochs (first training / re-training, best epoch on dev): " + "; ".join(
        f"{m} {(config['train'].get(m) or get_architecture(m).train.model_dump())['epochs']} / "
        f"{(config['retrain'].get(m) or get_architecture(m).retrain.model_dump())['epochs']}"
        for m in per_model) + ".", ""]
    for kind in ("train", "retrain"):
        for key, fit in config[kind].items():
            if ":" in key:  # a dataset-specific setting, e.g. "trec:dan"
                out += [f"Dataset-specific {kind} config (chosen on dev) for {key}: epochs {fit['epochs']}, "
                        f"schedule {fit['schedule']}, lr {fit['lr']:g}, batch {fit['batch_size']}.", ""]
    cuts = [f"{m}: target reductions {', '.join(f'{p:.0%}' for p in full_grid if p not in ps)} not run"
            for m, ps in per_model.items() if any(p not in ps for p in full_grid)]
    if cuts:
        out += ["Cut from the issue's grid (0, 50, 75, 90, 95, 98%) to fit the CPU budget: " + "; ".join(cuts) + ".",
                ""]
    return out


def timing_lines(timing: str | Path | None) -> list[str]:
    if not (timing and Path(timing).exists()):
        return []
    t = json.loads(Path(timing).read_text())
    runs = t.get("runs", [])
    each = [f"{r['seconds'] / 60:.1f} min for {r.get('cells_run', '?')} cells" for r in runs]
    parts = f" ({len(runs)} invocations: {', '.join(each)})" if len(runs) > 1 else ""
    note = f" {t['note']}" if t.get("note") else ""
    return [f"Sweep wall time: {t['seconds'] / 60:.1f} min for {t['cells']} cells{parts}, {t['workers']} worker "
            f"processes with 1 torch thread each, on a 2-core machine shared with other jobs.{note}", ""]


def cell_time_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The cells' own measured times (the CSV's `seconds`), summed per model: what one worker spends end to end."""
    per: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        per[r["model"]].append(float(r.get("seconds") or 0.0))
    parts = ", ".join(f"{m} {sum(v) / 60:.0f} min over {len(v)} cells" for m, v in sorted(per.items()))
    total = sum(sum(v) for v in per.values())
    return [f"The cells' own times (training included in the first cell that needs a model) add up to "
            f"{total / 60:.0f} min ({parts}): the wall time of one worker running them one after another.", ""]


def read_config(config: str | Path | None) -> dict[str, Any] | None:
    """A sweep's config.json, or a grid file (training/grids/*.json) with the defaults filled in."""
    if not (config and Path(config).exists()):
        return None
    from training.sweep import SweepConfig

    return SweepConfig.model_validate(json.loads(Path(config).read_text())).model_dump(mode="json")


def goals_23(accuracy_md: Path) -> list[str]:
    """Issue 23's goal table as docs/accuracy.md computes it (`python -m bench.accuracy_doc`), with where each
    miss's attempts are written up; nothing when that page is absent."""
    if not accuracy_md.is_file():
        return []
    text = accuracy_md.read_text(encoding="utf-8")
    head = "## Issue 23's goals, checked against the rows below"
    if head not in text:
        return []
    body = text.split(head, 1)[1].split("\n## ", 1)[0].strip().splitlines()
    return ["## Issue 23's goals (teacher, phrase-level SST-2; copied from accuracy.md)", "",
            "The systems, their bytes and CPU time: [accuracy.md](accuracy.md). What was tried for each miss: "
            "[accuracy-phrases.md](accuracy-phrases.md) (SST-2: recipes, the teacher in each phase, teacher-labelled "
            "augmented text, the CNN) and [distill-pilot.md](distill-pilot.md) (SST-5, TREC, MR, SUBJ: the "
            "distillation grid, the CNN and the BiLSTM on TREC).", "",
            *(line.replace("the rows below", "the rows of accuracy.md") for line in body), ""]


def write_report(csv_path: str | Path, out_dir: str | Path, timing: str | Path | None = None,
                 config: str | Path | None = None, d300: dict[str, Path | None] | None = None) -> list[Path]:
    """`d300` (keys csv, timing, config, fasttext, first, energy): a second sweep at d = 300, reported in its
    own section after the d = 50 one and drawn dashed in the same plots."""
    csv_path, out_dir = Path(csv_path), Path(out_dir)
    rows = load_rows(csv_path)
    if not rows:
        raise ValueError(f"{csv_path}: no results")
    rows300 = load_rows(d300["csv"]) if d300 and d300.get("csv") else []
    if d300 and d300.get("csv") and not rows300:
        raise ValueError(f"{d300['csv']}: no results")
    out_dir.mkdir(parents=True, exist_ok=True)
    agg = aggregate(rows)
    agg300 = aggregate(rows300) if rows300 else {}
    seeds = sorted({r["seed"] for r in rows})
    gap, misses = gap_table(agg)
    lines = [
        "# Results", "",
        f"Generated by `python -m training report --csv {csv_path}` from {len(rows)} runs "
        f"(seeds {', '.join(map(str, seeds))}); every figure is the mean ± sample std over seeds, test accuracy "
        "unless marked dev. Bytes are stored weight bytes: fp32 = 4 per weight; b-bit = b/8 per weight plus a "
        "4-byte fp32 scale per row (for the factor A, per column). Embedding reduction = 1 − embedding bytes / "
        "(4·|V|·d).", "",
    ]
    lines += timing_lines(timing)
    if (cfg := read_config(config)) is not None:
        lines += scope_section(cfg)
    lines += ["## Per dataset: full, online 90%, no-retrain, offline, int8, int4, low-rank + int8", "",
              "`online` is the default re-training recipe (CALR 1e-4..3e-3 + distillation α=0.9, T=4); when another "
              "recipe had the better mean dev accuracy it is shown as *dev-chosen*. `int8`/`int4` simulate b-bit "
              "per-row quantization of the embedding (manifest name `sim-int8-per-row-embedding`; the served int8 "
              "model is `int8-weights-per-row`, docs/int8.md); `online+int8` stores the re-trained factors in int8.",
              ""]
    lines += headline_tables(agg)
    lines += ["## DAN at 90%: does online re-training close the gap?", "",
              "Recipes: `online` CALR + distillation (α 0.9, T 4) 15 epochs; `online-plain` CALR without distillation; "
              "`online-mild` distillation α 0.5, T 2; `online-pure` α 1 (soft targets only); `online-nowd` no word "
              "dropout while re-training; "
              "`online-long` 30 epochs; `online-hot` CALR peak 1e-2. The recipe is chosen per dataset on mean dev "
              "accuracy; its test accuracy is then compared with the full model.", "",
              "Why the DAN is the hard case at d = 50: it averages the rows of A and multiplies by B once, so its "
              "whole sentence representation passes through k numbers (k = 4 at 90%) before the MLP. The CNN and "
              "the BiLSTM project every token to d and then apply non-linear layers per position.", ""] + gap + [""]
    if misses:
        lines += ["**Where it does not close:**", ""] + [f"- {m}" for m in misses] + [""]
    else:
        lines += ["Online re-training at 90% stays within 1.0 point of full and beats both baselines on every "
                  "dataset.", ""]
    lines += ["## DAN: accuracy against target reduction", ""] + by_reduction_table(agg) + [""]
    lines += ["## CALR against other re-training schedules (DAN, 90%, no distillation)", "",
              "adam: constant 1e-3; sgd-slow / sgd / sgd-fast: momentum 0.9, lr 0.002 / 0.01 / 0.05; "
              "cosine: 3e-3 → 1e-4; one-cycle: peak 3e-3; "
              "clr: triangular 1e-4..3e-3, one cycle per epoch; calr: the same cycle with the peak ×0.1 each "
              "epoch. All 15 epochs, best epoch on dev.", ""] + schedule_table(agg) + [""]
    lines += ["## Distillation against plain re-training (90%)", ""]
    lines += simple_table(agg, [("online", 0.9), ("online-plain", 0.9)]) + [""]
    lines += ["## Rank from the singular-value energy kept (DAN)", ""]
    lines += simple_table(agg, [("online", 0.9), ("online-e60", None), ("online-e80", None)], models=("dan",)) + [""]
    lines += ["## Quantization (post-training, symmetric per-row)", ""]
    lines += simple_table(agg, [("full", None)] + [(f"int{b}{s}", None) for s in ("", "-model") for b in (8, 4, 2)]
                          + [("online+int8", 0.9), ("online+int8-model", 0.9)]) + [""]
    ext = [k for k in agg if k[1] == "extended"]
    if ext:
        n = ext and agg[ext[0]].first["vocab_size"]
        lines += [f"## Extended vocabulary (training words + the most frequent GloVe words, |V| = {n:,})", "",
                  "The production case: unseen words at serving time still get GloVe-based vectors, and the "
                  "embedding is nearly all of the model.", ""]
        lines += simple_table(agg, [("full", None), ("online", 0.9), ("noretrain", 0.9), ("int8", None),
                                    ("online+int8", 0.9)], vocab="extended") + [""]
    shown = {m for m, _ in HEADLINE} | set(ONLINE_RECIPES) | set(SCHEDULES) | {
        "online-e60", "online-e80", "online+int8-model"} | {f"int{b}{s}" for s in ("", "-model") for b in (8, 4, 2)}
    others = sorted({(k[3], k[4]) for k in agg if k[3] not in shown and k[1] == "train"},
                    key=lambda c: (c[0], c[1] or 0.0))
    if others:
        lines += ["## Other methods", ""] + simple_table(agg, [("full", None), *others]) + [""]
    lines += ["## Analytic size and FLOPs (sst2 vocabulary)", "",
              "From `training/sizes.py` (a test holds the parameter counts against the exported ONNX files). "
              "The DAN averages A's rows before one k×d product; the CNN and BiLSTM project every token.", ""]
    lines += size_table(rows) + [""]
    plots = plot(agg, out_dir, agg300)
    if agg300:
        from research.report_d300 import section

        intro = timing_lines(d300.get("timing")) + cell_time_lines(rows300)
        if (cfg := read_config(d300.get("config"))) is not None:
            intro += [line.replace("## What ran", "## d = 300: what ran") for line in scope_section(cfg)]
        lines += section(agg300, rows300, d300.get("fasttext"), intro, cfg, d300.get("first"), d300.get("energy"))
    lines += goals_23(out_dir / "accuracy.md")
    lines += ["## Plots", ""]
    if agg300:
        lines += ["Solid lines and black stars: d = 50 (GloVe 6B-50d); dashed lines and grey stars: d = 300 "
                  "(en_vectors), where that sweep ran the dataset; its DAN low-rank curves use the d = 300 recipe "
                  "(online-nowd) where it ran.", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots] + [""]
    md = out_dir / "results.md"
    md.write_text("\n".join(lines))
    return [md, *plots]
