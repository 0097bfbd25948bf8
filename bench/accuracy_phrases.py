"""Phrase-level SST-2 (issue 23, must-show 3): the d = 300 DAN trained on the 67,398 `sst2-phrases` training
phrases, with and without the MiniLM teacher's soft targets, its low-rank re-training re-tuned for 10x the data on
seed-0 dev, then the dev-chosen recipes over seeds 0-2; docs/accuracy-phrases.md (+ .csv) generated from the
cells' JSON.

    nice -n 19 .venv/bin/python -m bench.accuracy_phrases run      # resumable: a cell whose JSON exists is skipped
    .venv/bin/python -m bench.accuracy_phrases report

One process, one torch thread, one cell at a time; cells in
`runs/accuracy-phrases/<s|aug-s|cnn-s|bilstm-s|pt-s|bilstm-pt-s><seed>/`, models cached beside them. Stages
(`run --stages ...`, default all, in order; `--seeds` for `seeds`, `cnn`, `bilstm`, `today`, `pt-*`):

- `base`:     seed 0: `full` (the DAN's first training: `training/grids/sst2-phrases.json`, 6 epochs) and
              `online-nowd-pure` (today's sentence-level recipe: 15 CALR epochs, soft targets of the full DAN);
- `sched`:    seed 0: `online-nowd-pure<s>` for every short schedule s of PHRASE_SCHEDULES, and `online-nowd-plain`
              at the one with the best lowrank dev accuracy (ties: the earlier; test is never looked at);
- `teacher`:  seed 0: `teacher-full-a-t` for (alpha, T) in PHRASE_TEACHER_GRID; then at the chosen schedule, the
              three teacher re-trainings (both phases / re-training only / first training only) of each setting;
- `seeds`:    the dev-chosen recipe without the teacher and the one with it (full, lowrank, int8 of the full model,
              lowrank + int8 factors) over the seeds;
- `cnn`:      the Kim CNN with the DAN's choices (untuned), seed 0 then the seeds;
- `bilstm`:   the BiLSTM with the same methods (untuned), the seeds asked for (one process per seed can run them
              side by side);
- `today`:    today's sentence-level recipe `online-nowd-pure` over the seeds (a reference);
- `pt-dan`, `pt-bilstm`: the DAN's and the BiLSTM's teacher recipes (PT_DAN_METHODS, PT_BILSTM_METHODS) with the
              teacher fine-tuned on the phrases themselves (`python -m training teacher --dataset sst2-phrases`;
              refused without its cache), the seeds asked for; cells in `pt-s<seed>/`, `bilstm-pt-s<seed>/`.

The teacher-labelled augmented set and its cells: bench/accuracy_phrases_augment.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from pathlib import Path
from typing import Any

import torch

from bench import accuracy_phrases_augment as augment
from bench.stages import splice
from slimtext.data import datasets_root
from training.checkpoint import write_json
from training.methods import METHODS, PHRASE_SCHEDULES, PHRASE_TEACHER_GRID, evaluate, factorized, schedule_tag
from training.recipe import phrase_teacher
from training.sweep import SweepConfig
from training.teacher_logits import cache_path, cache_source
from training.train import FitConfig, accuracy
from training.workbench import DataConfig, Workbench

ROOT = Path(__file__).resolve().parent.parent
DATASET = "sst2-phrases"
RUNS = ROOT / "runs" / "accuracy-phrases"
CSV = ROOT / "docs" / "accuracy-phrases.csv"
DOC = ROOT / "docs" / "accuracy-phrases.md"
GRID = ROOT / "training" / "grids" / "sst2-phrases.json"  # the first training on the phrases comes from here
P = 0.9
SEEDS = (0, 1, 2)
STAGES = ("base", "sched", "teacher", "seeds", "cnn", "bilstm", "today", "pt-dan", "pt-bilstm")
CNN, BILSTM = "cnn-s", "bilstm-s"  # the CNN's and the BiLSTM's cells (the DAN's methods, untuned)
BILSTM_START, BILSTM_END = "<!-- bilstm:start -->", "<!-- bilstm:end -->"  # its section (`merge` rewrites it)
CNN_METHODS = [m for low in ("online-pure-r2-h0.0001-l1e-05", "teacher-retrain-online-r2-h0.0001-l1e-05-a0.5-t2")
               for m in (low, f"{low}+int8")]
CNN_METHODS[:0] = ["full", "int8"]
# the teacher fine-tuned on the phrases themselves (`training teacher --dataset sst2-phrases`: its own cache,
# training/teacher_cache/sst2-phrases.npz) and the cells that learn from it; the cells above read sst2's teacher
# (fine-tuned on the 6,920 sentences; its `phrases` split)
PT, BILSTM_PT = "pt-s", "bilstm-pt-s"
PT_START, PT_END = "<!-- phrase-teacher:start -->", "<!-- phrase-teacher:end -->"
PT_DAN_METHODS = [m for a in ("a0.5", "a1")
                  for low in (f"teacher-retrain-online-nowd-r3-h0.0001-l1e-05-{a}-t2",
                              f"teacher-first-online-nowd-pure-r3-h0.0001-l1e-05-{a}-t2",
                              f"teacher-online-nowd-r3-h0.0001-l1e-05-{a}-t2", f"teacher-full-{a}-t2")
                  for m in (low, f"{low}+int8")]
PT_BILSTM_METHODS = [m for low in ("teacher-retrain-online-r2-h0.0001-l1e-05-a0.5-t2", "teacher-full-a0.5-t2",
                                   "teacher-first-online-pure-r2-h0.0001-l1e-05-a0.5-t2",
                                   "teacher-online-r2-h0.0001-l1e-05-a0.5-t2", "teacher-full-a1-t2",
                                   "teacher-online-r2-h0.0001-l1e-05-a1-t2", "teacher-online-r4-h0.0001-l1e-05-a1-t2",
                                   "teacher-full-a1-t4", "teacher-online-r4-h0.0001-l1e-05-a1-t4")
                     for m in (low, f"{low}+int8")] + ["teacher-online-r4-h0.0001-l1e-05-a1-t2+int8-model"]
COLUMNS = ["dataset", "model", "data", "seed", "method", "kind", "alpha", "temperature", "phases", "teacher",
           "schedule", "rank", "dev_acc", "test_acc", "noretrain_dev_acc", "best_epoch", "model_bytes", "params",
           "seconds"]


def tag(alpha: float, t: float) -> str:
    return f"-a{alpha:g}-t{t:g}"


AUG = "aug-s"  # cells on the teacher-labelled augmented set (bench/accuracy_phrases_augment.py)


def cell_path(seed: int, method: str, prefix: str = "s") -> Path:
    return RUNS / f"{prefix}{seed}" / f"{method}.json"


def load_cell(seed: int, method: str, prefix: str = "s") -> dict[str, Any] | None:
    path = cell_path(seed, method, prefix)
    return json.loads(path.read_text()) if path.exists() else None


# ---------------------------------------------------------------- choices (dev only)

def best(seed: int, methods: list[str], key: str = "dev_acc") -> str | None:
    """The method with the best dev accuracy among those run (ties: the earlier in `methods`)."""
    scored = [(c[key], -i, m) for i, m in enumerate(methods) if (c := load_cell(seed, m)) is not None]
    return max(scored)[2] if scored else None


def chosen_schedule() -> str | None:
    """The short schedule whose `online-nowd-pure` lowrank has the best seed-0 dev accuracy."""
    name = best(0, [f"online-nowd-pure{schedule_tag(*s)}" for s in PHRASE_SCHEDULES])
    return None if name is None else name.removeprefix("online-nowd-pure")


def chosen_plain() -> str | None:
    """Without the teacher: the lowrank recipe (today's, a short schedule; soft targets of the full DAN or labels)
    with the best seed-0 dev accuracy."""
    s = chosen_schedule()
    cands = ["online-nowd-pure"] + ([f"online-nowd-pure{s}", f"online-nowd-plain{s}"] if s else [])
    return best(0, cands)


def chosen_teacher_full() -> str | None:
    return best(0, [f"teacher-full{tag(a, t)}" for a, t in PHRASE_TEACHER_GRID])


def teacher_lowrank_candidates(s: str) -> list[str]:
    return [f"{kind}{s}{tag(a, t)}" for a, t in PHRASE_TEACHER_GRID
            for kind in ("teacher-online-nowd", "teacher-retrain-online-nowd", "teacher-first-online-nowd-pure")]


def chosen_teacher() -> str | None:
    """With the teacher: the teacher lowrank recipe with the best seed-0 dev accuracy."""
    s = chosen_schedule()
    return best(0, teacher_lowrank_candidates(s)) if s else None


def full_of(method: str) -> str:
    """The full model a lowrank recipe starts from (its method name)."""
    m = METHODS[method]
    if not m.train:
        return "full"
    return f"teacher-full{tag(m.train['distill_alpha'], m.train['distill_temperature'])}"


def int8_of(full: str) -> str:
    """The int8 copy (embedding rows stored int8) of a full model."""
    return "int8" if full == "full" else f"{full}+int8"


def first_training(arch: str = "dan") -> FitConfig:
    """The first training on the phrases (the grid's `sst2-phrases:<arch>`; the DAN: 6 epochs, seed 0's 15-epoch
    run kept epoch 3, and a 6-epoch run is that run's first 6 epochs, so `full` is the same model either way)."""
    return SweepConfig.model_validate_json(GRID.read_text()).fit_config("train", DATASET, arch)


# ---------------------------------------------------------------- running

EPOCH = re.compile(r"epoch\s+(\d+)\s+loss\s+([\d.]+)\s+dev\s+([\d.]+)")

class Runner:
    def __init__(self, log, data: DataConfig | None = None, prefix: str = "s", teacher_dir: Path | None = None,
                 arch: str = "dan"):
        self.log, self.prefix, self.teacher_dir, self.arch = log, prefix, teacher_dir, arch
        self.data = data or DataConfig(dataset=DATASET, vectors="spacy300")
        self.task = None

    def cells(self, seed: int, methods: list[str]) -> None:
        todo = [m for m in dict.fromkeys(methods) if not cell_path(seed, m, self.prefix).exists()]
        if not todo:
            return
        if self.task is None:
            started = time.time()
            self.task = self.data.load()
            self.log(f"{self.task.name}: data + vectors loaded in {time.time() - started:.0f} s "
                     f"(|V| = {len(self.task.tok)}, {len(self.task.train)} training examples)")
        epochs: list[list[float]] = []  # dev accuracy by epoch of every phase trained in the current cell

        def bench_log(line: str) -> None:
            if (m := EPOCH.search(line)) is not None:
                if int(m.group(1)) == 1:
                    epochs.append([])
                epochs[-1].append(float(m.group(3)))
            self.log(f"    {line}")

        bench = Workbench(self.task, self.arch, seed, RUNS / f"{self.prefix}{seed}" / "cache",
                          train_cfg=first_training(self.arch), log=bench_log, teacher_dir=self.teacher_dir)
        for name in todo:
            method = METHODS[name]
            self.log(f"{self.prefix}{seed} {name}")
            epochs.clear()
            result = evaluate(bench, method, P if method.uses_reduction else None)
            result["dev_by_epoch"] = [list(e) for e in epochs]
            if phases(method) != "none":  # whose logits: sst2's teacher or the phrases' own
                result["teacher"] = cache_source(self.task.folder.name, "train", self.teacher_dir)[0]
            if method.retrains and method.low_rank:  # what the factors score before re-training (dev only)
                result["noretrain_dev_acc"] = accuracy(factorized(bench, method, P), self.task.dev)
            write_json(cell_path(seed, name, self.prefix), result)
            self.log(f"  -> dev {result['dev_acc']:.4f} test {result['test_acc']:.4f} ({result['seconds']} s)")


def _logger():
    RUNS.mkdir(parents=True, exist_ok=True)
    log_file = open(RUNS.parent / "accuracy-phrases.log", "a", encoding="utf-8")  # noqa: SIM115 (open for the run)

    def log(line: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        print(f"{stamp} {line}", flush=True)
        log_file.write(f"{stamp} {line}\n")
        log_file.flush()
    return log, log_file


def run_augmented(folder: Path, teacher_dir: Path, seeds: tuple[int, ...], methods: list[str] | None) -> None:
    """The dev-chosen teacher recipe (full, lowrank and their int8 copies) on the augmented set in `folder`."""
    torch.set_num_threads(1)
    log, log_file = _logger()
    teach = chosen_teacher()
    if methods is None:
        if teach is None:
            raise ValueError("no teacher recipe chosen yet: run `python -m bench.accuracy_phrases run` first")
        methods = [full_of(teach), int8_of(full_of(teach)), teach, f"{teach}+int8"]
    r = Runner(log, DataConfig(data=folder, vectors="spacy300"), AUG, teacher_dir)
    for seed in seeds:
        r.cells(seed, methods)
    log_file.close()


def run(stages: list[str], seeds: tuple[int, ...]) -> None:
    torch.set_num_threads(1)
    log, log_file = _logger()
    r = Runner(log)
    if "base" in stages:
        r.cells(0, ["full", "online-nowd-pure"])
    if "sched" in stages:
        r.cells(0, [f"online-nowd-pure{schedule_tag(*s)}" for s in PHRASE_SCHEDULES])
        s = chosen_schedule()
        log(f"chosen schedule (seed-0 dev): {s}")
        r.cells(0, [f"online-nowd-plain{s}"])
    if "teacher" in stages:
        r.cells(0, [f"teacher-full{tag(a, t)}" for a, t in PHRASE_TEACHER_GRID])
        s = chosen_schedule()
        r.cells(0, teacher_lowrank_candidates(s))
    if "seeds" in stages:
        plain, teach = chosen_plain(), chosen_teacher()
        log(f"chosen on seed-0 dev: without the teacher {plain}, with it {teach}")
        for seed in seeds:
            for low in (plain, teach):
                if low is not None:
                    r.cells(seed, [full_of(low), int8_of(full_of(low)), low, f"{low}+int8"])
    if "cnn" in stages:  # the DAN's recipe, untuned for the CNN; seed 0 first, then the other seeds asked for
        cnn = Runner(log, prefix=CNN, arch="cnn")
        for seed in dict.fromkeys((0, *seeds)):
            cnn.cells(seed, CNN_METHODS)
    if "bilstm" in stages:
        bilstm = Runner(log, prefix=BILSTM, arch="bilstm")
        for seed in seeds:
            bilstm.cells(seed, CNN_METHODS)
    if "today" in stages:  # today's sentence-level re-training recipe on the phrases, over the seeds (a reference)
        for seed in seeds:
            r.cells(seed, ["online-nowd-pure"])
    for stage, prefix, arch, methods in (("pt-dan", PT, "dan", PT_DAN_METHODS),
                                         ("pt-bilstm", BILSTM_PT, "bilstm", PT_BILSTM_METHODS)):
        if stage in stages:
            if not phrase_teacher(datasets_root() / DATASET):  # the same test `training run` makes
                raise FileNotFoundError(f"{cache_path(DATASET)}: no teacher fine-tuned on these phrases; run "
                                        f"`python -m training teacher --dataset {DATASET}` first")
            pt = Runner(log, prefix=prefix, arch=arch)
            for seed in seeds:
                pt.cells(seed, methods)
    log_file.close()


# ---------------------------------------------------------------- the report

def phases(m) -> str:
    return "+".join(p for p, c in (("first", m.train), ("calr", m.retrain)) if c.get("distill_from") == "teacher") \
        or "none"


def rows() -> list[dict[str, Any]]:
    out = []
    prefixes = ("s", AUG, CNN, BILSTM, PT, BILSTM_PT)
    for path in sorted(p for prefix in prefixes for p in RUNS.glob(f"{prefix}*/*.json")):
        r = json.loads(path.read_text())
        m = METHODS[r["method"]]
        kd = m.retrain if m.retrain.get("distill_from") == "teacher" else m.train
        hist = (r.get("dev_by_epoch") or [[]])[-1]  # the last phase trained in the cell: this cell's own model
        sched = ""
        if m.retrains:
            cfg = r.get("retrain", {})
            sched = (f"{cfg.get('epochs')} ep, {cfg.get('lr_low'):g}-{cfg.get('lr_high'):g}, "
                     f"{cfg.get('calr_cycles', 1)} cyc") if cfg else ""
        out.append({"dataset": r["dataset"], "model": r["model"],
                    "data": "augmented" if path.parent.name.startswith(AUG) else "phrases",
                    "seed": r["seed"], "method": r["method"], "kind": m.kind,
                    "alpha": kd.get("distill_alpha", ""), "temperature": kd.get("distill_temperature", ""),
                    "phases": phases(m), "teacher": r.get("teacher", "sst2" if phases(m) != "none" else ""),
                    "schedule": sched, "rank": r["rank"] or "",
                    "dev_acc": round(100 * r["dev_acc"], 2), "test_acc": round(100 * r["test_acc"], 2),
                    "noretrain_dev_acc": round(100 * r["noretrain_dev_acc"], 2) if "noretrain_dev_acc" in r else "",
                    "best_epoch": 1 + hist.index(max(hist)) if hist else "",
                    "model_bytes": r["model_bytes"], "params": r["params"], "seconds": r["seconds"]})
    return sorted(out, key=lambda r: (r["model"], r["data"] != "phrases", r["seed"], r["method"]))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def sentence_anchor() -> dict[str, float]:
    """Today's sentence-level SST-2 DAN at d = 300 (docs/results-d300.csv): mean test % over its seeds."""
    path = ROOT / "docs" / "results-d300.csv"
    out: dict[str, list[float]] = {}
    if path.is_file():
        with open(path, encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                if r["dataset"] == "sst2" and r["model"] == "dan" and r["method"] in (
                        "full", "online-nowd-pure", "int8", "online-nowd-pure+int8"):
                    out.setdefault(r["method"], []).append(100 * float(r["test_acc"]))
    return {k: sum(v) / len(v) for k, v in out.items()}


def teacher_on_phrases() -> dict[str, Any]:
    """The sst2 teacher: dev/test from its cached logits, and its agreement with the phrases' labels."""
    import numpy as np

    from bench.distill_pilot import teacher_numbers
    from slimtext.data import datasets_root, read_examples, split_path
    from training.teacher_logits import cache_path

    out = teacher_numbers("sst2")
    with np.load(cache_path("sst2"), allow_pickle=False) as z:
        labels = [str(x) for x in z["labels"]]
        pred = z["logits_phrases"].astype(np.float32).argmax(1)
    gold = read_examples(split_path(datasets_root() / DATASET, "train")).labels
    out["phrases_agree"] = round(100 * float(np.mean([labels[i] == g for i, g in zip(pred, gold, strict=True)])), 2)
    return out


def seed_table(data: list[dict[str, Any]], groups: list[tuple[str, list[tuple[str, str]]]]) -> list[str]:
    seeds = sorted({r["seed"] for r in data})
    head = " | ".join(f"s{s} dev / test" for s in seeds)
    lines = [f"| recipe | model | method | {head} | mean dev | mean test | bytes | mean s/cell |",
             "|---|---|---|" + "---:|" * (len(seeds) + 4)]
    for group, members in groups:
        for label, method in members:
            mine = {r["seed"]: r for r in data if r["method"] == method}
            if not mine:
                continue
            per = " | ".join(f"{mine[s]['dev_acc']:.2f} / {mine[s]['test_acc']:.2f}" if s in mine else "-"
                             for s in seeds)
            lines.append(f"| {group} | {label} | `{method}` | {per} | "
                         f"{_f(_mean([r['dev_acc'] for r in mine.values()]))} | "
                         f"{_f(_mean([r['test_acc'] for r in mine.values()]))} | "
                         f"{next(iter(mine.values()))['model_bytes']:,} | "
                         f"{_f(_mean([r['seconds'] for r in mine.values()]), '.1f')} |")
    return lines


def report() -> None:
    if chosen_schedule() is None:  # e.g. a machine that ran only the BiLSTM's cells
        print(f"{RUNS}: the DAN's seed-0 cells are not here, and the page's choices are made on them: {DOC} and {CSV} "
              "left as they are (`merge` adds the cells that are here)")
        return
    everything = rows()
    CSV.parent.mkdir(parents=True, exist_ok=True)
    with open(CSV, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(everything)
    pt = [r for r in everything if r["teacher"] == DATASET]
    mine = [r for r in everything if r["teacher"] != DATASET]  # sst2's teacher, or none
    data = [r for r in mine if r["data"] == "phrases" and r["model"] == "dan"]
    augmented = [r for r in mine if r["data"] == "augmented"]
    cnn = [r for r in mine if r["model"] == "cnn"]
    bilstm = [r for r in mine if r["model"] == "bilstm"]
    s0 = [r for r in data if r["seed"] == 0]
    sched, plain, teach, tfull = chosen_schedule(), chosen_plain(), chosen_teacher(), chosen_teacher_full()
    anchor = sentence_anchor()
    lines = ["# Phrase-level SST-2: the d = 300 DAN on 67k phrases, with and without the MiniLM teacher (issue 23)",
             "",
             "Generated by `python -m bench.accuracy_phrases report` from the cells' JSON (`runs/accuracy-phrases/`, "
             "data in [`accuracy-phrases.csv`](accuracy-phrases.csv)); do not edit by hand.", "",
             f"Dataset `{DATASET}` (67,398 phrase-labelled training examples, the standard SST-2 protocol; dev and "
             "test are sst2's 872 / 1,821 sentences). DAN, 300-d spaCy vectors (`--vectors spacy300`), first "
             "training = the DAN's recipe with 6 epochs instead of 15 (Adam 5e-4, batch 64, word dropout 0.3, best dev "
             "epoch kept; `training/grids/sst2-phrases.json`: seed 0's 15-epoch `full` kept epoch 3, and the first 6 "
             "epochs of a run are the same whatever its length, so that model is the 6-epoch one too)."
             " Lowrank = online SVD at p = 0.9 (k = 29) + CALR re-training without word dropout, best dev epoch kept. "
             "With the teacher: loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE, the teacher's "
             "logits for the phrases read from `training/teacher_cache/sst2.npz` split `phrases` (matched to "
             "`sst2-phrases/train.tsv` by sha256; `training.teacher_logits.cache_source`). int8 = the embedding rows "
             "stored as int8 (one scale a row; `int8` / `+int8` as in the d = 300 sweep); lowrank + int8 = the "
             "factors so stored. bytes = parameter bytes (fp32, or as stored where quantized). Accuracy in %; "
             "seconds = wall time of the cell's own training + evaluation (a lowrank or int8 cell re-uses its full "
             "model), nice 19, one torch thread, on 2 cores shared with other jobs.", ""]
    lines += ["Reproduce (resumable; one torch thread, nice 19):", "", "```bash",
              "nice -n 19 .venv/bin/python -m bench.accuracy_phrases run --stages base sched teacher seeds",
              "nice -n 19 .venv/bin/python -m bench.accuracy_phrases_augment label",
              "nice -n 19 .venv/bin/python -m bench.accuracy_phrases augmented --seeds 0 1 2",
              "nice -n 19 .venv/bin/python -m bench.accuracy_phrases run --stages cnn today",
              ".venv/bin/python -m bench.accuracy_phrases report", "```", "",
              "The same DAN cells through the sweep: "
              "`python -m training sweep --grid training/grids/sst2-phrases.json` (first training from its `train` "
              "entry, results in docs/results-phrases.csv; not run here).", ""]
    try:
        t = teacher_on_phrases()
        lines += ["## The teacher", "",
                  "| teacher | dev % | test % | agrees with the phrases' labels % | fine-tune s | parameters | "
                  "µs/text b1 |", "|---|---:|---:|---:|---:|---:|---:|",
                  f"| all-MiniLM-L6-v2 fine-tuned on the sst2 sentences | {t['dev_acc']:.2f} | {t['test_acc']:.2f} | "
                  f"{t['phrases_agree']:.2f} | {t.get('fit_wall_s', '')} | {t.get('params', '')} | "
                  f"{t.get('latency_b1_us', '')} |", ""]
    except (OSError, KeyError, ValueError) as e:
        lines += [f"(teacher figures unavailable: {e})", ""]
    lines += ["## Seed 0: what was tried (the choices are made on dev only)", "",
              "Stages: `full` + today's sentence-level recipe `online-nowd-pure` (15 CALR epochs, lr 1e-4..3e-3, "
              "soft targets of the full DAN); short schedules `online-nowd-pure-r<epochs>-h<lr_high>[-l<lr_low>]"
              "[-c<cycles per epoch>]`; `online-nowd-plain<s>` (labels only); the teacher in the first training "
              "(`teacher-full-a<alpha>-t<T>`), then at the chosen schedule the teacher in both phases "
              "(`teacher-online-nowd<s>-a-t`), in the re-training only (`teacher-retrain-online-nowd<s>-a-t`, "
              "from the plain full DAN) or in the first training only (`teacher-first-online-nowd-pure<s>-a-t`: "
              "the teacher-trained full DAN re-trained on its own soft targets). noretrain dev = the factors "
              "before re-training; best epoch = the epoch kept (of this cell's last training phase).", "",
              "| method | phases with teacher | alpha | T | re-training | rank | noretrain dev % | dev % | test % | "
              "best epoch | seconds |", "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(s0, key=lambda r: (r["kind"] != "full", "teacher" in r["method"], r["method"])):
        if r["kind"] == "quant" or r["method"].endswith("+int8"):
            continue
        lines.append(f"| `{r['method']}` | {r['phases']} | {r['alpha']} | {r['temperature']} | {r['schedule']} | "
                     f"{r['rank'] or '-'} | {r['noretrain_dev_acc'] or '-'} | {r['dev_acc']:.2f} | "
                     f"{r['test_acc']:.2f} | {r['best_epoch']} | {r['seconds']} |")
    cell = {m: load_cell(0, m) for m in filter(None, (plain, teach, tfull, f"online-nowd-pure{sched}" if sched
                                                       else None))}
    lines += ["", "Choices (seed-0 dev accuracy; test never used):", ""]
    if sched:
        lines.append(f"- short schedule: `{sched}` (its `online-nowd-pure` dev "
                     f"{100 * cell[f'online-nowd-pure{sched}']['dev_acc']:.2f}, best of {len(PHRASE_SCHEDULES)}).")
    if plain:
        lines.append(f"- without the teacher: `{plain}` (dev {100 * cell[plain]['dev_acc']:.2f}), on the plain "
                     "`full`.")
    if tfull:
        lines.append(f"- teacher in the first training: `{tfull}` (dev {100 * cell[tfull]['dev_acc']:.2f}, best of "
                     f"{len(PHRASE_TEACHER_GRID)} (alpha, T)).")
    if teach:
        lines.append(f"- with the teacher: `{teach}` (dev {100 * cell[teach]['dev_acc']:.2f}, best of the "
                     f"{len(teacher_lowrank_candidates(sched))} teacher re-trainings at `{sched}`), on "
                     f"`{full_of(teach)}`.")
    picked = {x for low in (plain, teach) if low for x in (full_of(low), int8_of(full_of(low)), low, f"{low}+int8")}
    seeded = [r for r in data if r["method"] in picked]
    if seeded and len({r["seed"] for r in seeded}) > 1:
        groups = []
        for label, low in (("without the teacher", plain), ("with the teacher", teach)):
            if low:
                groups.append((label, [("full", full_of(low)), ("int8", int8_of(full_of(low))), ("lowrank", low),
                                       ("lowrank + int8", f"{low}+int8")]))
        today = [("today's sentence-level recipe, for reference", [("lowrank", "online-nowd-pure")])]
        lines += ["", "## Seeds 0, 1, 2: the dev-chosen recipes", ""] + seed_table(
            [r for r in data if r["method"] in picked or r["method"] == "online-nowd-pure"], groups + today)
        if anchor:
            lines += ["", "Sentence-level SST-2 today (docs/results-d300.csv, 3 seeds, test %): full "
                      f"{_f(anchor.get('full'))}, int8 {_f(anchor.get('int8'))}, lowrank (`online-nowd-pure`) "
                      f"{_f(anchor.get('online-nowd-pure'))}, lowrank + int8 "
                      f"{_f(anchor.get('online-nowd-pure+int8'))}."]
            means = {m: _mean([r["test_acc"] for r in data if r["method"] == m])
                     for m in {x for _, members in groups for _, x in members}}
            pairs = [(f"{label} {model}", means.get(method), anchor.get(ref))
                     for (label, members) in groups for (model, method) in members
                     for ref in [{"full": "full", "int8": "int8", "lowrank": "online-nowd-pure",
                                  "lowrank + int8": "online-nowd-pure+int8"}[model]]]
            lines += ["", "Phrase-level minus sentence-level, mean test points: " + "; ".join(
                f"{name} {a - b:+.2f}" for name, a, b in pairs if a is not None and b is not None) + "."]
        lines += ["", "## Issue 23's goals (3 seeds, dev-chosen, test %)", "",
                  "| goal | recipe | mean test | seeds | met? |", "|---|---|---:|---:|---|"]
        for label, low, goal in (("SST-2 lowrank ≥ 88.0 with the teacher", teach, 88.0),
                                 ("SST-2 lowrank ≥ 86.0 without the teacher", plain, 86.0)):
            mine = [r["test_acc"] for r in data if r["method"] == low]
            if mine:
                m = sum(mine) / len(mine)
                lines.append(f"| {label} | `{low}` | {m:.2f} | {len(mine)} | "
                             f"{'met' if m >= goal else f'missed by {goal - m:.2f} points'} |")
        for label, low in (("without the teacher", plain), ("with the teacher", teach)):
            if not low:
                continue
            full = {r["seed"]: r["test_acc"] for r in data if r["method"] == full_of(low)}
            lr = {r["seed"]: r["test_acc"] for r in data if r["method"] == low}
            both = sorted(set(full) & set(lr))
            if both:
                d = sum(lr[s] - full[s] for s in both) / len(both)
                lines.append(f"| lowrank within 0.5 point of its own full model ({label}) | `{low}` vs "
                             f"`{full_of(low)}` | {d:+.2f} | {len(both)} | "
                             f"{'met' if d >= -0.5 else f'missed by {-0.5 - d:.2f} points'} |")
    if augmented:
        lines += ["", *augmented_section(data, augmented)]
    if cnn:
        lines += ["", *pilot_section(cnn, "cnn")]
    if bilstm:
        lines += ["", BILSTM_START, *pilot_section(bilstm, "bilstm"), BILSTM_END]
    if pt:
        lines += ["", PT_START, *phrase_teacher_section(pt, mine), PT_END]
    parts = (("DAN on the phrases", data), ("DAN on the augmented set", augmented), ("CNN", cnn), ("BiLSTM", bilstm),
             ("with the phrase-level teacher", pt))
    total = {name: sum(float(r["seconds"] or 0) for r in part) for name, part in parts}
    lines += ["", f"Wall time of the {len(everything)} cells: " + ", ".join(
        f"{name} {total[name] / 60:.1f} min ({len(part)} cells)" for name, part in parts if part)
        + f"; {sum(total.values()) / 60:.1f} min in all (the BiLSTM's three seeds in three processes side by side, "
        "every other cell one at a time; the teacher's labelling of the augmented texts not included)."]
    lines += ["", *NOTES]
    DOC.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {DOC} and {CSV} ({len(everything)} cells)")


def augmented_section(data: list[dict[str, Any]], augmented: list[dict[str, Any]]) -> list[str]:
    """The same methods on the phrases + the teacher-labelled augmented texts, against the phrases alone."""
    from training.teacher_logits import cache_meta

    AUG_PER_SENTENCE, NAME, P_MASK, P_NGRAM = augment.AUG_PER_SENTENCE, augment.NAME, augment.P_MASK, augment.P_NGRAM
    try:
        meta = cache_meta(NAME, augment.teacher_dir())
    except (OSError, KeyError, ValueError):
        meta = {}
    lines = ["## Teacher-labelled augmented text (Tang et al. 2019, without POS-guided swaps)", "",
             f"`{NAME}`: the 67,398 phrases + {meta.get('augmented', '?')} new texts: each of the 6,920 training "
             f"sentences drawn {AUG_PER_SENTENCE} times, every word masked with probability {P_MASK} (the teacher "
             f"reads `[MASK]`, the student's text drops the word), then with probability {P_NGRAM} only a random "
             "n-gram (n = 1..5) kept; empty drafts and repeats dropped. Labels: the teacher's argmax; soft targets: "
             f"its logits (labelling took {meta.get('label_seconds', '?')} s, 1 thread). Built by "
             "`python -m bench.accuracy_phrases_augment label` outside the repository (`<cache>/augment/`). "
             "Same seed-0-dev-chosen recipe; the phrases-only figures beside.", "",
             "| method | seed | dev % (aug) | test % (aug) | dev % (phrases) | test % (phrases) | seconds (aug) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    base = {(r["seed"], r["method"]): r for r in data}
    methods = list(dict.fromkeys(r["method"] for r in sorted(augmented, key=lambda r: (r["kind"] != "full",
                                                                                       r["kind"] == "quant"))))
    for m in methods:
        mine = sorted((r for r in augmented if r["method"] == m), key=lambda r: r["seed"])
        for r in mine:
            b = base.get((r["seed"], m))
            lines.append(f"| `{m}` | {r['seed']} | {r['dev_acc']:.2f} | {r['test_acc']:.2f} | "
                         f"{_f(b and b['dev_acc'])} | {_f(b and b['test_acc'])} | {r['seconds']} |")
        paired = [(r, base[(r["seed"], m)]) for r in mine if (r["seed"], m) in base]
        if len(paired) > 1:
            lines.append(f"| `{m}` | mean of {len(paired)} | {_f(_mean([a['dev_acc'] for a, _ in paired]))} | "
                         f"{_f(_mean([a['test_acc'] for a, _ in paired]))} | "
                         f"{_f(_mean([b['dev_acc'] for _, b in paired]))} | "
                         f"{_f(_mean([b['test_acc'] for _, b in paired]))} | |")
    return lines


PILOT_TITLES = {"cnn": "The Kim CNN", "bilstm": "The BiLSTM"}


def pilot_section(cells: list[dict[str, Any]], arch: str) -> list[str]:
    """The CNN's or the BiLSTM's cells: the DAN's methods, untuned for the architecture."""
    cfg = first_training(arch)
    seeds = ", ".join(str(x) for x in sorted({r["seed"] for r in cells}))
    lines = [f"## {PILOT_TITLES[arch]} on the phrases (seed {seeds}; no tuning of its own)", "",
             f"First training {cfg.epochs} epochs (Adam {cfg.lr:g}, batch {cfg.batch_size}; the sweep recipe "
             "has 6: cut to fit the time, `training/grids/sst2-phrases.json`), lowrank = the DAN's dev-chosen "
             f"schedule for 2 epochs (`online-pure-r2-h0.0001-l1e-05`: soft targets of the full {arch.upper()}; "
             "`teacher-retrain-online-r2-h0.0001-l1e-05-a0.5-t2`: the teacher's, alpha 0.5, T 2).", "",
             "| method | seed | rank | noretrain dev % | dev % | test % | best epoch | bytes | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in cells:
        lines.append(f"| `{r['method']}` | {r['seed']} | {r['rank'] or '-'} | {r['noretrain_dev_acc'] or '-'} | "
                     f"{r['dev_acc']:.2f} | {r['test_acc']:.2f} | {r['best_epoch']} | {r['model_bytes']:,} | "
                     f"{r['seconds']} |")
    if len({r["seed"] for r in cells}) > 1:
        low, teach = CNN_METHODS[2], CNN_METHODS[4]
        lines += ["", "Per seed and mean:", "", *seed_table(cells, [
            ("without the teacher", [("full", "full"), ("int8", "int8"), ("lowrank", low),
                                     ("lowrank + int8", f"{low}+int8")]),
            ("teacher in the re-training", [("lowrank", teach), ("lowrank + int8", f"{teach}+int8")])])]
    return lines


def phrase_teacher_section(cells: list[dict[str, Any]], others: list[dict[str, Any]]) -> list[str]:
    """The cells that learn from the teacher fine-tuned on the phrases, per architecture, with the same methods'
    cells from sst2's teacher (fine-tuned on the sentences) beside them where they ran."""
    lines = ["## The teacher fine-tuned on the phrases", "",
             "`python -m training teacher --dataset sst2-phrases --epochs 1`: MiniLM fine-tuned on the 67,398 "
             "phrases instead of the 6,920 sentences (its own cache, `training/teacher_cache/sst2-phrases.npz`, "
             "read in place of sst2's `phrases` split: `training.teacher_logits.cache_source`; figures in "
             "[teacher.md](teacher.md)). Students: the DAN with the teacher recipes of the sections above at the "
             "chosen schedule (alpha 0.5 and 1, T 2), the BiLSTM with its section's 2-epoch re-training (alpha 0.5 "
             "and 1) and then, as its dev kept rising in the second epoch, 4 epochs (alpha 1, T 2 and 4); the "
             "teacher in the re-training only (`teacher-retrain-*`, from the plain full model), in the first "
             "training only (`teacher-first-*-pure-*`: re-trained on its own soft targets) or in both "
             "(`teacher-online-*`). `+int8-model`: every weight matrix stored int8 (one scale a row), as the "
             "service serves its int8 copies; `+int8`: the factors only. All on 3 seeds; choose on the mean dev.", ""]
    for arch in ("dan", "bilstm"):
        mine = [r for r in cells if r["model"] == arch]
        if not mine:
            continue
        methods = list(dict.fromkeys(r["method"] for r in sorted(mine, key=lambda r: (r["kind"] != "full",
                                                                                      r["method"]))))
        before = [r for r in others if r["model"] == arch and r["method"] in methods]
        lines += [f"### {PILOT_TITLES.get(arch, 'The DAN')}", "",
                  *seed_table(mine, [("phrase-level teacher", [(_variant(m), m) for m in methods])]), ""]
        if before:
            lines += ["The same methods with sst2's teacher (fine-tuned on the sentences), where they ran:", "",
                      *seed_table(before, [("sentence-level teacher", [(_variant(m), m) for m in methods])]), ""]
    return lines


def _variant(method: str) -> str:
    m = METHODS[method]
    name = "full" if m.kind in ("full", "quant") else "lowrank"
    if not m.bits:
        return name
    return f"{name} + int8" + (" (every weight matrix)" if m.scope == "model" else "")


NOTES = [
    "## What was tried, what missed, what was not tried", "",
    "- Tried (seed 0, chosen on dev): today's re-training recipe (15 CALR epochs peaking at 3e-3) loses about "
    "1.5 dev points to the full DAN on the phrases; nine short CALR schedules (3 or 5 epochs; peaks 3e-3 down to "
    "3e-5; lr_low 1e-4 / 1e-5 / 3e-6; 1 or 4 cycles an epoch): the lower the peak the better down to 1e-4 (3e-5 "
    "fell back), and the re-training keeps its first or second epoch: with 10x the data, one gentle epoch is "
    "enough; labels only (`online-nowd-plain`) below the full DAN's soft targets at both schedules tried; the "
    "teacher in the first training at alpha 0.5 / 0.9 / 1 (T = 2) lowered the full DAN's dev accuracy, but the "
    "lowrank model re-trained from that teacher-trained full DAN on its own soft targets "
    "(`teacher-first-online-nowd-pure`) was the best teacher recipe on dev, ahead of the teacher in both phases "
    "and in the re-training only.",
    "- Missed: both SST-2 accuracy goals of issue 23 (table above; the 0.5-point goal is met): the d = 300 DAN on"
    " the phrases is a 82-84 % model whatever the recipe, and its dev accuracy moves by 1-3 points from one epoch"
    " to the next (`dev_by_epoch` in the cells' JSON), so the seed-0 choices are made on differences of the size "
    "of that noise. The teacher itself scores 87.86 on test: a student that matches it would still miss 88.0.",
    "- Teacher-labelled augmented text (section above): 21,444 masked / n-gram drafts of the training sentences, "
    "labelled by the saved teacher (it reproduces the cached logits: max |diff| 0.001 on 128 dev texts) in about "
    "2.5 minutes on one thread, added to the phrases. It was not adopted: on seed-0 dev the chosen teacher "
    "lowrank recipe tied with the phrases alone (83.49 both). Over 3 seeds it moved the teacher-trained full DAN "
    "by +0.61 dev / +0.55 test and its lowrank model by +0.23 dev / -0.33 test.",
    "- The Kim CNN (section above) ran the DAN's choices untuned (3 first-training epochs, 2 of re-training): on "
    "the phrases it lands where the DAN does (mean test: full 82.35 vs the DAN's 82.17; lowrank 82.01 vs 81.99; "
    "with the teacher in the re-training 82.70 vs the DAN's chosen teacher recipe 83.25) at 10-15x the DAN's "
    "seconds per cell.",
    "- Not tried: with sst2's teacher, other temperatures (only T = 2) or alpha < 0.5 (with the phrase-level "
    "teacher the BiLSTM also ran alpha 1 at T = 4: section above); the teacher's soft targets mixed with the "
    "labels in the CALR re-training of the teacher-trained model; Iyyer et al.'s DAN setting (GloVe 840B, "
    "deeper, Adagrad); POS-guided word swaps and more than 4 drafts a sentence; tuning the CNN on its own; the "
    "BiLSTM's size and first-training length; a teacher fine-tuned for more than one epoch on the phrases; a "
    "choice over several dev seeds. `make run` serves the DAN's phrase-level recipe (training/recipe.py: with "
    "the phrase-level teacher in the first training where its cache matches).",
    "- Order of the work: the schedule grid grew in two steps (6, then 8, then 9 schedules) as lower peaks kept "
    "winning; the teacher's re-trainings ran at the first winner (`-r3-h0.0003-l1e-05`) and again at the final "
    "one. A fresh `run` re-creates the final choices (the cells are deterministic on one thread) but not the "
    "teacher cells at the first winner. Seed 0's `full` ran 15 epochs (310.9 s) before the 6-epoch first "
    "training was adopted.",
    "- int8 here is the d = 300 sweep's `int8` / `+int8`: the embedding (or the factors) stored as int8 rows, the "
    "rest fp32; the served int8 copy (`make run`) stores every weight matrix as int8.",
]


def merge() -> None:
    """For a machine that holds only some of the cells (runs/ is not in git): the cells here added to, or replacing
    their rows in, the committed CSV (every other row kept as recorded), and the BiLSTM's section of the page
    rewritten from its cells. `report` needs every cell, for the choices made on seed 0's dev."""
    def key(r: dict[str, Any]) -> tuple[str, str, str, str, str]:
        return r["model"], r["data"], str(r["seed"]), r["method"], r["teacher"]

    with open(CSV, encoding="utf-8", newline="") as f:
        old = list(csv.DictReader(f))
    for r in old:  # a CSV from before the phrase-level teacher: its teacher cells read sst2's teacher
        if not r.get("teacher"):
            r["teacher"] = "sst2" if r["phases"] not in ("", "none") else ""
    merged = {key(r): r for r in old}
    here = rows()
    merged.update((key(r), r) for r in here)
    with open(CSV, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(sorted(merged.values(), key=lambda r: (r["model"], r["data"] != "phrases", r["teacher"],
                                                           int(r["seed"]), r["method"])))
    bilstm = [r for r in here if r["model"] == "bilstm" and r["teacher"] != DATASET]
    if bilstm:
        splice(DOC, "\n".join(pilot_section(bilstm, "bilstm")), BILSTM_START, BILSTM_END)
    pt = [r for r in here if r["teacher"] == DATASET]
    if pt:
        others = [{**r, "dev_acc": float(r["dev_acc"]), "test_acc": float(r["test_acc"]), "seed": int(r["seed"]),
                   "seconds": float(r["seconds"] or 0), "model_bytes": int(r["model_bytes"])}
                  for r in merged.values() if r["teacher"] != DATASET and r["data"] == "phrases"]
        text = "\n".join(phrase_teacher_section(pt, others))
        if PT_START in DOC.read_text(encoding="utf-8"):
            splice(DOC, text, PT_START, PT_END)
        else:  # the first time: the section goes after the BiLSTM's
            page = DOC.read_text(encoding="utf-8")
            DOC.write_text(page.replace(BILSTM_END, f"{BILSTM_END}\n\n{PT_START}\n{text}\n{PT_END}", 1),
                           encoding="utf-8")
    print(f"merged {len(here)} cells into {CSV} ({len(merged)} rows)" + (f"; {DOC}: the BiLSTM's section" if bilstm
                                                                          else "") + ("; the phrase-level teacher's"
                                                                                      " section" if pt else ""))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["run", "augmented", "report", "merge"],
                    help="augmented: the cells on the teacher-labelled augmented set (after "
                    "`python -m bench.accuracy_phrases_augment label`); merge: the cells on this machine into the "
                    "committed CSV and the BiLSTM's section (run --stages bilstm then merge, on a machine without the "
                    "other cells)")
    ap.add_argument("--stages", nargs="*", choices=STAGES, default=list(STAGES), help="run: stages, in order")
    ap.add_argument("--seeds", type=int, nargs="*", default=None,
                    help=f"run: seeds of the `seeds` stage (default {list(SEEDS)}); augmented: seeds (default [0])")
    ap.add_argument("--methods", nargs="*", default=None, help="augmented: methods (default: the dev-chosen teacher "
                    "recipe's full and lowrank models, and their int8 copies)")
    args = ap.parse_args(argv)
    if args.command == "run":
        run(args.stages, tuple(args.seeds or SEEDS))
    elif args.command == "augmented":
        run_augmented(augment.aug_folder(), augment.teacher_dir(), tuple(args.seeds or [0]), args.methods)
    elif args.command == "merge":
        return merge()
    report()


if __name__ == "__main__":
    main()
