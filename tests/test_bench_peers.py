"""bench/peers, tiny and without the peer frameworks: slimtext and the plain FastAPI peer (both run from the
`serve` extra) served for real, answers checked, a short wrk load; a peer with wrong answers, a peer that cannot
start and a peer that is not installed get no numbers. The goals of issue 26 and the worker knobs of the 2-worker
variants are checked on made-up numbers and on the launch commands alone (no peer started)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from bench.peers import run
from bench.peers.model import WORKERS_ENV, workers
from bench.peers.servers import PEERS, parse_v2
from slimtext.data import datasets_root, read_examples


def test_compare_answers_catches_every_kind_of_difference():
    ref = [("positive", [0.1, 0.9]), ("negative", [0.8, 0.2])]
    assert run.compare_answers(ref, [("positive", [0.1 + 5e-6, 0.9 - 5e-6]), ("negative", [0.8, 0.2])]) is None
    assert "label" in run.compare_answers(ref, [("negative", [0.1, 0.9]), ref[1]])
    assert "probabilities differ" in run.compare_answers(ref, [ref[0], ("negative", [0.7, 0.3])])
    assert "1 answers for 2 texts" in run.compare_answers(ref, ref[:1])
    assert "probabilities differ" in run.compare_answers(ref, [ref[0], ("negative", [0.8])])


def test_parse_v2_splits_rows_by_label_count():
    reply = {"outputs": [{"name": "label", "data": ["b", "a"]},
                         {"name": "probabilities", "data": [0.25, 0.75, 0.6, 0.4]}]}
    assert parse_v2(reply, ["a", "b"]) == [("b", [0.25, 0.75]), ("a", [0.6, 0.4])]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
def test_slimtext_and_fastapi_measured_broken_and_missing_peers_not(quick_run, tmp_path):
    models = quick_run[0]
    model = next(p for p in models.iterdir() if (p / "manifest.json").exists() and "lowrank" in p.name)
    texts = read_examples(datasets_root() / "sst2" / "test.tsv").texts[: run.CHECK_TEXTS]

    def swapped(reply, labels):  # a real server whose answers are read wrong: its numbers must not count
        return [(label, probs[::-1]) for label, probs in PEERS["fastapi"].parse(reply, labels)]

    broken = dataclasses.replace(PEERS["fastapi"], name="broken", parse=swapped)
    def exits(python, *_):  # a 2-worker variant that exits at once
        return [python, "-c", "raise SystemExit('no second worker')"], {}

    nostart = dataclasses.replace(PEERS["fastapi-2workers"], name="nostart", launch=exits)
    peers = [PEERS["slimtext"], PEERS["fastapi"], broken, nostart, PEERS["litserve"]]
    result = run.bench_model(model, peers, tmp_path / "no-venvs", texts, rounds=1, duration=1, log=lambda *a, **k: None)

    got = result["peers"]
    for name in ("slimtext", "fastapi"):
        assert got[name]["problem"] is None
        med = got[name]["median"]
        assert set(med) == {run.scenario_key(label, c) for label, _, c in run.SCENARIOS}
        assert all(m.rps > 0 and m.errors == 0 and 0 < m.p50_ms <= m.p99_ms for m in med.values())
        assert med["32 texts, c=8"].texts_s == pytest.approx(32 * med["32 texts, c=8"].rps)
        assert got[name]["pss_mb"] > 10
    assert "answers differ from slimtext's" in got["broken"]["problem"] and not got["broken"]["runs"]
    assert got["nostart"]["problem"].startswith("could not be measured: nostart exited with 1")
    assert "no second worker" in got["nostart"]["problem"] and not got["nostart"]["runs"]
    assert got["litserve"]["problem"].startswith("not installed") and not got["litserve"]["runs"]
    assert got["slimtext"]["startup"].startswith("python -m service: ")  # the worker count it picked
    assert result["rounds"][0]["order"] == [p.name for p in peers]

    results = {model.name: result}
    run.plot(results, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 10_000
    text = run.render(results, {"rounds": "1"}, "chart.png")
    assert f"| 1 text, c=8 | fastapi | {got['fastapi']['median']['1 text, c=8'].rps:,.0f} |" in text
    assert "- broken: answers differ" in text and "- nostart: could not be measured" in text and "1 text, c=64" in text
    assert "## Goal (issue 26)" in text  # judged against the best measured peer (fastapi here), four loads
    assert text.count(f"- {model.name}, ") == len(run.GOALS) and "the best peer (fastapi, " in text
    assert f"| {PEERS['slimtext'].note} (this run: `python -m service: " in text


def fake(rps: float, p99_ms: float, texts: int = 1, errors: int = 0) -> run.Run:
    return run.Run(rps, rps * texts, p99_ms / 3, p99_ms, errors)


def entry(c1, c8, c64, batch) -> dict:
    """A measured peer: (req/s, p99 ms) for 1 text at c=1, 8, 64 and for 32 texts at c=8."""
    return {"median": {"1 text, c=1": fake(*c1), "1 text, c=8": fake(*c8), "1 text, c=64": fake(*c64),
                       "32 texts, c=8": fake(*batch, texts=32)}, "problem": None}


def test_goals_take_the_best_peer_row_for_throughput_and_the_lowest_p99_from_any_peer():
    peers = {
        "slimtext": entry((1500, 5.0), (1600, 14.0), (1700, 300.0), (400, 60.0)),
        "slimtext-2workers": entry((9000, 1.0), (9000, 1.0), (9000, 1.0), (900, 1.0)),  # ours: never a peer
        "fastapi": entry((400, 9.0), (500, 28.0), (800, 237.0), (300, 80.0)),
        "fastapi-2workers": entry((600, 8.0), (1000, 20.0), (1200, 150.0), (320, 90.0)),
        "litserve-2workers": entry((300, 4.0), (700, 30.0), (900, 400.0), (250, 50.0)),
        "ray": {"runs": [], "problem": "could not be measured: timeout"},  # no numbers: not a peer row
    }
    goals = run.judge_goals(peers)
    assert [g.load for g in goals] == ["1 text, c=1", "1 text, c=8", "1 text, c=64", "32 texts, c=8"]
    c1, c8, c64, batch = goals
    # c=1: 1500 / 600 = 2.5× fastapi-2workers; p99 5.0 > litserve-2workers' 4.0
    assert (c1.best, c1.lowest, c1.lowest_p99_ms) == ("fastapi-2workers", "litserve-2workers", 4.0)
    assert c1.ratio == pytest.approx(2.5) and c1.throughput_met and not c1.p99_met and not c1.met
    # c=8: 1600 / 1000 = 1.6× (≥ 1.5), p99 14 ≤ 20: met
    assert (c8.best, c8.lowest) == ("fastapi-2workers", "fastapi-2workers") and c8.met
    # c=64: 1700 / 1200 = 1.42× < 1.5 and p99 300 > 150: neither part met
    assert c64.ratio == pytest.approx(1700 / 1200) and not c64.throughput_met and not c64.p99_met
    # 32 texts: texts/s, 1.2× the best (fastapi-2workers 320 × 32); p99 60 > litserve-2workers' 50
    assert batch.field == "texts_s" and batch.target == 1.2 and batch.best == "fastapi-2workers"
    assert batch.ratio == pytest.approx(400 / 320) and batch.throughput_met
    assert (batch.lowest, batch.p99_met) == ("litserve-2workers", False)

    lines = run.goal_lines("m", goals)
    assert len(lines) == 4
    assert lines[1] == ("- m, 1 text, c=8: slimtext 1,600 req/s = **1.60×** the best peer (fastapi-2workers, "
                        "1,000 req/s): ≥ 1.5× met; p99 14.0 ms vs the lowest peer p99 20.0 ms (fastapi-2workers): "
                        "p99 no worse met")
    assert "12,800 texts/s = **1.25×**" in lines[3] and "≥ 1.2× met" in lines[3]
    assert lines[3].endswith("(litserve-2workers): p99 no worse NOT met")
    table = run.goal_table({"m": goals, "other": None})
    assert table[0].startswith("| model | load | slimtext | best peer | ratio")
    assert table[2] == ("| m | 1 text, c=1 | 1,500 req/s | fastapi-2workers (600) | 2.50× (≥ 1.5×) | 5.0 | "
                        "4.0 (litserve-2workers) | no: p99 |")
    assert table[3].endswith("| yes |") and table[4].endswith("| no: ratio, p99 |")
    assert table[5].startswith("| m | 32 texts, c=8 | 12,800 texts/s | fastapi-2workers (10,240) | 1.25× (≥ 1.2×)")
    assert table[6] == "| other | | | not enough peers measured | | | | |"


def test_goals_need_slimtext_and_a_peer_and_no_failed_request():
    one = entry((1000, 1.0), (1000, 1.0), (1000, 1.0), (100, 1.0))
    assert run.judge_goals({"slimtext": one}) is None  # slimtext-* rows are not peers
    assert run.judge_goals({"slimtext-2workers": one, "fastapi": one}) is None
    assert run.goal_lines("m", None) == ["- m: not enough peers measured to judge the goal"]
    equal = run.judge_goals({"slimtext": one, "fastapi": one})
    assert all(g.p99_met and not g.throughput_met for g in equal)  # p99 equal to the lowest counts as no worse
    ahead = entry((2000, 1.0), (2000, 1.0), (2000, 1.0), (200, 1.0))
    ahead["median"]["1 text, c=64"] = fake(2000, 1.0, errors=3)
    goals = run.judge_goals({"slimtext": ahead, "fastapi": one})
    assert [g.met for g in goals] == [True, True, False, True]
    assert run.goal_lines("m", goals)[2].endswith("; slimtext had 3 failed requests: NOT met")
    assert run.goal_table({"m": goals})[4].endswith("| no: 3 errors |")


def test_every_framework_has_a_two_worker_row_with_its_own_knob(tmp_path, monkeypatch):
    for one, two in (("fastapi", "fastapi-2workers"), ("litserve", "litserve-2workers"),
                     ("bentoml", "bentoml-2workers"), ("mlserver", "mlserver-2workers"), ("ray", "ray-2replicas")):
        assert PEERS[two].venv == PEERS[one].venv and PEERS[two].path == PEERS[one].path and PEERS[two].note
    model = tmp_path / "sst2-tiny"
    model.mkdir()
    (model / "manifest.json").write_text("{}")

    def launch(name: str) -> tuple[list[str], dict[str, str], Path]:
        tmp = tmp_path / name
        tmp.mkdir()
        cmd, env = PEERS[name].launch("python", 8123, model, tmp)
        return cmd, env, tmp

    def flag(cmd: list[str]) -> str | None:
        return cmd[cmd.index("--workers") + 1] if "--workers" in cmd else None

    assert flag(launch("slimtext")[0]) is None  # the production default: `python -m service` picks it
    assert flag(launch("slimtext-1worker")[0]) == "1" and flag(launch("slimtext-2workers")[0]) == "2"
    assert flag(launch("fastapi")[0]) == "1" and flag(launch("fastapi-2workers")[0]) == "2"
    for name, n in (("litserve", "1"), ("litserve-2workers", "2"), ("bentoml", "1"), ("bentoml-2workers", "2"),
                    ("ray", "1"), ("ray-2replicas", "2")):
        assert launch(name)[1][WORKERS_ENV] == n, name
    for name, n in (("mlserver", 1), ("mlserver-2workers", 2)):
        settings = json.loads((launch(name)[2] / "mlserver" / "settings.json").read_text())
        assert settings["parallel_workers"] == n and settings["http_port"] == 8123

    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert workers() == 1
    monkeypatch.setenv(WORKERS_ENV, "2")
    assert workers() == 2
    monkeypatch.setenv(WORKERS_ENV, "0")
    with pytest.raises(RuntimeError):
        workers()
