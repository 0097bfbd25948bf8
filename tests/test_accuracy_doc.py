"""docs/accuracy.md's generator (bench/accuracy_doc.py) on the committed CSVs: one table per dataset, the goals table's
verdicts against a recomputation straight from docs/results-d300.csv, and the dev rule. Offline and fast: renders
into a temporary folder from the cached timings (docs/accuracy-latency.csv); nothing is trained or timed."""

from __future__ import annotations

import csv
import re
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

from bench.accuracy_doc import DATASETS, DOCS, NAMES, Group, choose, render
from bench.accuracy_latency import fasttext_quant_settings


@pytest.fixture(scope="module")
def doc(tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("accuracy-doc")
    text = render(DOCS, out / "accuracy.md", out / "accuracy_vs_bytes.png")
    return text, out


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _rows(table_text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table_text.splitlines()
            if line.startswith("| ") and not line.startswith("|---")]


def test_every_dataset_has_its_table_with_every_kind_of_system(doc):
    text, out = doc
    assert "do not edit by hand" in text and "python -m bench.accuracy_doc" in text
    for ds in DATASETS:
        rows = _rows(_section(text, NAMES[ds]))
        header, body = rows[0], rows[1:]
        assert header[:3] == ["system", "teacher", "recipe (method)"] and "µs / text" in header and "bytes" in header
        systems = [r[0] for r in body]
        assert "MiniLM teacher" in systems
        assert any(s.startswith("DAN full") for s in systems) and any(s.startswith("DAN lowrank") for s in systems)
        assert any(s.endswith("int8") for s in systems)
        assert any(".bin" in s for s in systems) and any(".ftz" in s for s in systems)
        assert any("Kim (2014)" in s for s in systems)  # the published numbers
        for r in body:  # every figure is a number or "-", never a NaN
            assert all(c != "nan" for c in r)
    png = out / "accuracy_vs_bytes.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def _sweep() -> list[dict[str, str]]:
    with open(DOCS / "results-d300.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("ds", ["sst5", "mr", "subj"])
def test_within_half_a_point_goal_agrees_with_a_recomputation_from_the_sweep(doc, ds):
    """Without the teacher these datasets' lowrank rows come from the sweep, plus distill-pilot.csv's teacher-free
    `online` for an architecture the sweep did not run here: the lowrank recipe with the most seeds and the best
    mean dev over every architecture, against the same architecture's `full`."""
    text, _ = doc
    rows = [r for r in _sweep() if r["dataset"] == ds and r["dim"] == "300" and r["vocab"] == "train"]
    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        if r["kind"] == "online" and r["reduction"] == "0.9":
            groups[(r["model"], r["method"])].append(r)
    with open(DOCS / "distill-pilot.csv", encoding="utf-8", newline="") as f:  # percent there, fractions here
        pilot = [{**r, "dev_acc": str(float(r["dev_acc"]) / 100), "test_acc": str(float(r["test_acc"]) / 100)}
                 for r in csv.DictReader(f) if r["dataset"] == ds and r["model"] not in {x["model"] for x in rows}]
    for r in pilot:
        if r["method"] in ("online", "full"):
            rows.append({**r, "kind": "online" if r["method"] == "online" else "full"})
            if r["method"] == "online":
                groups[(r["model"], r["method"])].append(r)
    most = max(len(v) for v in groups.values())
    # per architecture the sweep's choice, then across architectures (ties: online-nowd-pure, then the name)
    per_arch = {}
    for (model, method), rs in groups.items():
        if len(rs) != most:
            continue
        dev = round(100 * statistics.fmean(float(r["dev_acc"]) for r in rs), 9)
        best = per_arch.get(model)
        if best is None or (-dev, method != "online-nowd-pure", method) < (-best[0], best[1] != "online-nowd-pure",
                                                                            best[1]):
            per_arch[model] = (dev, method, rs)
    model, (dev, method, rs) = max(per_arch.items(), key=lambda kv: kv[1][0])
    test = 100 * statistics.fmean(float(r["test_acc"]) for r in rs)
    full = 100 * statistics.fmean(float(r["test_acc"]) for r in rows if r["model"] == model and r["method"] == "full")
    d = test - full
    expected = "**met**" if d >= -0.5 else f"missed by {-0.5 - d:.2f} points"
    goal = f"{NAMES[ds]} lowrank within 0.5 point of its own full model (without the teacher)"
    row = next(r for r in _rows(_section(text, "Issue 23's goals, checked against the rows below")) if r[0] == goal)
    assert row[2] == f"`{method}`"
    assert row[5].startswith(f"{d:+.2f} vs `full` ({full:.2f})")
    assert row[6] == expected


def test_accuracy_goal_verdicts_are_computed_from_the_value(doc):
    text, _ = doc
    for r in _rows(_section(text, "Issue 23's goals, checked against the rows below"))[1:]:
        m = re.match(r".* lowrank ≥ ([\d.]+)", r[0])
        if not m or r[5] == "-":
            continue
        target, value = float(m.group(1)), float(r[5])
        assert r[6] == ("**met**" if value >= target else f"missed by {target - value:.2f} points")


def test_the_dev_rule_prefers_more_seeds_then_dev_then_the_default_recipe():
    def g(method: str, devs: list[float]) -> Group:
        return Group(method, [{"seed": str(i), "dev_acc": str(d), "test_acc": "0"} for i, d in enumerate(devs)], 1.0)

    assert choose({"a": g("a", [90.0]), "b": g("b", [80.0, 80.0, 80.0])}).method == "b"  # one lucky seed loses
    assert choose({"a": g("a", [80.0] * 3), "b": g("b", [81.0] * 3)}).method == "b"
    assert choose({"zz": g("zz", [80.0] * 3), "online-nowd-pure": g("online-nowd-pure", [80.0] * 3)}).method == \
        "online-nowd-pure"
    assert choose({}) is None


def test_fasttext_quantization_settings_are_read_from_its_page():
    settings = fasttext_quant_settings(DOCS / "fasttext.md")
    assert len(settings) == 10 and settings[("trec", 50)] == (False, 10_000)


def test_cells_of_the_phrase_level_teacher_are_a_family_of_their_own():
    """Cells with the same method names but different teachers (the `teacher` column of accuracy-phrases.csv) are
    never averaged together: the phrase-level teacher's cells get their own rows."""
    from bench.accuracy_doc import phrase_systems

    def row(seed: int, method: str, kind: str, teacher: str, test: float) -> dict[str, str]:
        return {"model": "dan", "data": "phrases", "seed": str(seed), "method": method, "kind": kind,
                "phases": "first" if teacher else "none", "teacher": teacher, "dev_acc": str(test),
                "test_acc": str(test), "model_bytes": "1000"}

    rows = [row(s, "teacher-full-a0.5-t2", "full", t, acc) for s in range(3)
            for t, acc in (("sst2", 80.0), ("sst2-phrases", 90.0))]
    by_family = {(s.family, s.variant): s for s in phrase_systems(rows) if s.test is not None}
    assert by_family[("DAN, phrases", "full")].test == 80.0
    assert by_family[("DAN, phrases, phrase teacher", "full")].test == 90.0
    assert by_family[("DAN, phrases, phrase teacher", "full")].seeds == 3


def test_lowrank_int8_is_the_served_format_where_it_ran():
    """A recipe's `+int8-model` copy (every weight matrix int8: what the service serves and what was timed) is its
    lowrank + int8 row where it ran, whatever the factors-only `+int8` copy scored; else the `+int8` copy."""
    from bench.accuracy_doc import phrase_systems

    def row(seed: int, method: str, kind: str, dev: float, nbytes: int) -> dict[str, str]:
        return {"model": "bilstm", "data": "phrases", "seed": str(seed), "method": method, "kind": kind,
                "phases": "first+calr", "teacher": "sst2-phrases", "dev_acc": str(dev), "test_acc": str(dev),
                "model_bytes": str(nbytes), "rank": "29"}

    low = "teacher-online-r4-h0.0001-l1e-05-a1-t2"
    rows = [r for s in range(3) for r in (row(s, low, "online", 86.0, 3_000_000),
                                          row(s, f"{low}+int8", "online_quant", 86.1, 1_700_000))]
    got = {x.variant: x for x in phrase_systems(rows)}["lowrank+int8"]
    assert (got.method, got.bytes) == (f"{low}+int8", 1_700_000)
    rows += [row(s, f"{low}+int8-model", "online_quant", 85.9, 770_000) for s in range(3)]
    got = {x.variant: x for x in phrase_systems(rows)}["lowrank+int8"]
    assert (got.method, got.bytes) == (f"{low}+int8-model", 770_000)


def test_an_architecture_outside_the_sweep_gets_its_teacher_free_rows_from_the_pilot(doc):
    """MR's BiLSTM never ran in the d = 300 sweep: its full / lowrank / lowrank + int8 rows without the teacher come
    from distill-pilot.csv's own cells, with the bytes those cells recorded."""
    text, _ = doc
    assert not any(r["dataset"] == "mr" and r["model"] == "bilstm" for r in _sweep())
    with open(DOCS / "distill-pilot.csv", encoding="utf-8", newline="") as f:
        cells = [r for r in csv.DictReader(f) if (r["dataset"], r["model"]) == ("mr", "bilstm")]
    body = {r[0]: r for r in _rows(_section(text, NAMES["mr"]))[1:]}
    for system, method in (("BiLSTM full", "full"), ("BiLSTM lowrank", "online"),
                           ("BiLSTM lowrank + int8", "online+int8")):
        mine = [r for r in cells if r["method"] == method]
        row = body[system]
        assert row[1] == "no" and row[2] == f"`{method}`" and row[-1] == "distill-pilot.csv"
        assert row[4] == f"{statistics.fmean(float(r['dev_acc']) for r in mine):.2f}"
        assert row[6] == f"{int(mine[0]['model_bytes']):,}"
