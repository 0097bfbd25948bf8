"""bench/peers, tiny and without the peer frameworks: slimtext and the plain FastAPI peer (both run from the
`serve` extra) served for real, answers checked, a short wrk load; a peer with wrong answers and a peer that is not
installed get no numbers."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from bench.peers import run
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
    peers = [PEERS["slimtext"], PEERS["fastapi"], broken, PEERS["litserve"]]
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
    assert got["litserve"]["problem"].startswith("not installed") and not got["litserve"]["runs"]
    assert result["rounds"][0]["order"] == [p.name for p in peers]

    results = {model.name: result}
    run.plot(results, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 10_000
    text = run.render(results, {"rounds": "1"}, "chart.png")
    assert f"| 1 text, c=8 | fastapi | {got['fastapi']['median']['1 text, c=8'].rps:,.0f} |" in text
    assert "- broken: answers differ" in text and "1 text, c=64" in text
    assert "goal (≥ 1×)" in text  # judged against the best measured peer (fastapi here)
