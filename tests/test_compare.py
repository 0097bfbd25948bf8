"""bench.compare end to end on the quick-run models (tiny iteration counts): every column for every
model from one run, figures that agree with the files and manifests, and a real PNG chart."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import compare
from bench.report import COLUMNS
from slimtext.manifest import Manifest
from tests.conftest import ROOT

MODELS = ("sst2-dan-lowrank", "sst2-dan-int8", "sst2-dan-full")


def parse_table(markdown: str) -> tuple[list[str], list[dict[str, str]]]:
    lines = [ln for ln in markdown.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")), strict=True)) for ln in lines[1:]]
    return header, rows


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


@pytest.fixture(scope="module")
def compared(quick_run, tmp_path_factory):
    models_dir = quick_run[0]
    out = tmp_path_factory.mktemp("compare") / "compare.md"
    code = compare.main([*(str(models_dir / m) for m in MODELS), "--b1-iters", "100", "--b32-iters", "20",
                         "--http-requests", "48", "--concurrency", "4", "--rss-repeats", "1", "--out", str(out)])
    return models_dir, out, code


def test_compare_writes_every_column_for_every_model(compared):
    models_dir, out, code = compared
    assert code == 0
    header, rows = parse_table(out.read_text())
    assert header == [h.format(ref="sst2-dan-full") for h, _ in COLUMNS.values()]
    assert [r["model"] for r in rows] == list(MODELS)
    for r in rows:
        assert all(cell not in ("", "nan") for cell in r.values()), r
        for key in ("ORT b1 p50 µs", "ORT b32 p50 µs", "HTTP req/s", "HTTP p50 ms", "RSS growth at load",
                    "RSS per extra copy"):
            assert number(r[key]) > 0, (r["model"], key)
        assert number(r["ORT b1 p50 µs"]) <= number(r["ORT b1 p99 µs"])
        assert number(r["HTTP p50 ms"]) <= number(r["HTTP p99 ms"])
        assert r["HTTP failures"] == "0"


def test_compare_figures_match_files_and_manifests(compared):
    models_dir, out, _ = compared
    _, rows = parse_table(out.read_text())
    by_model = {r["model"]: r for r in rows}
    for name, r in by_model.items():
        manifest = Manifest.load(models_dir / name)
        assert number(r["ONNX bytes"]) == (models_dir / name / "model.onnx").stat().st_size
        assert r["kind"] == manifest.kind
        assert number(r["test accuracy"]) == pytest.approx(manifest.accuracy.test, abs=1e-4)
    assert number(by_model["sst2-dan-full"]["agreement with sst2-dan-full"]) == 1.0
    assert number(by_model["sst2-dan-lowrank"]["ONNX bytes"]) < number(by_model["sst2-dan-full"]["ONNX bytes"])
    assert number(by_model["sst2-dan-int8"]["ONNX bytes"]) < number(by_model["sst2-dan-full"]["ONNX bytes"])


def test_compare_chart_is_a_png(compared):
    _, out, _ = compared
    png = out.with_suffix(".png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > height > 300
    assert f"]({png.name})" in out.read_text()


def test_rss_probe_measures_a_fresh_process(quick_run):
    folder = quick_run[0] / "sst2-dan-full"
    out = subprocess.run([sys.executable, "-m", "bench.rss_probe", str(folder)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    probe = json.loads(out)
    assert probe["after"] - probe["before"] == probe["growth"]
    assert probe["growth"] >= probe["marginal"] > (folder / "model.onnx").stat().st_size // 2


def test_compare_needs_two_models(quick_run):
    with pytest.raises(SystemExit):
        compare.parse_args([str(quick_run[0] / "sst2-dan-full")])
    with pytest.raises(SystemExit):
        compare.parse_args([str(quick_run[0] / "sst2-dan-full"), str(quick_run[0])])  # not a model folder


def test_latency_spread_brackets_the_overall_median():
    """The chart's run-to-run spread: per-round p50s, whose range always holds the p50 of all samples."""
    from bench.measure import Latency

    rounds = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [2.0, 2.5, 9.0]]
    lat = Latency.of([x for r in rounds for x in r], 1e3, rounds)
    assert lat.p50_range == (2000.0, 5000.0)
    assert lat.p50_range[0] <= lat.p50 <= lat.p50_range[1]
    assert Latency.of([1.0], 1.0).p50_range is None
