"""The sweep harness and the report: a quick configuration, run for real, resumed, and reported."""

import csv
import json

import pytest
from pydantic import ValidationError

from training.cli import main
from training.sweep import Block, SweepConfig, cell_path, plan


def test_plan_deduplicates_cells_and_validates():
    cfg = SweepConfig(blocks=[
        Block(datasets=["sst2"], methods=["full", "online", "int8"], reductions=[0.5, 0.9], seeds=[0]),
        Block(datasets=["sst2"], methods=["full", "online"], reductions=[0.9], seeds=[0]),
    ])
    (group, cells), = plan(cfg).items()
    assert group == ("sst2", 0, "dan", 0)
    assert cells == [("full", None), ("online", 0.5), ("online", 0.9), ("int8", None)]
    for bad in ({"methods": ["nope"]}, {"models": ["gpt"]}, {"reductions": [1.0]}, {"seeds": []}):
        with pytest.raises(ValidationError):
            Block(**{"datasets": ["sst2"], "methods": ["full"], **bad})


def test_quick_sweep_through_the_cli_resumes_and_reports(tmp_path):
    out, csv_path, docs = tmp_path / "sweep", tmp_path / "results.csv", tmp_path / "docs"
    argv = ["sweep", "--datasets", "sst2", "--models", "dan", "--methods", "full", "online", "noretrain",
            "--reductions", "0.9", "--seeds", "0", "--epochs", "1", "--retrain-epochs", "1",
            "--limit-train", "500", "--out", str(out), "--csv", str(csv_path), "--workers", "1"]
    assert main(argv) == 0
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["method"] for r in rows) == ["full", "noretrain", "online"]
    online = next(r for r in rows if r["method"] == "online")
    assert int(online["rank"]) >= 1 and float(online["embedding_bytes_reduction"]) >= 0.9
    assert int(online["model_bytes"]) < int(next(r for r in rows if r["method"] == "full")["model_bytes"])
    assert json.loads((out / "config.json").read_text())["limit_train"] == 500

    cfg = SweepConfig.model_validate_json((out / "config.json").read_text())
    done = cell_path(cfg, ("sst2", 0, "dan", 0), ("online", 0.9))
    stamp = done.stat().st_mtime_ns
    assert main(argv) == 0  # resumed: every cell is finished, none is run again
    assert done.stat().st_mtime_ns == stamp

    assert main(["report", "--csv", str(csv_path), "--out", str(docs), "--timing", str(out / "timing.json"),
                 "--config", str(out / "config.json")]) == 0
    md = (docs / "results.md").read_text()
    assert "### sst2" in md and "online @ 90%" in md and "Sweep wall time" in md and "## What ran" in md
    full = next(r for r in rows if r["method"] == "full")
    assert f"{float(full['test_acc']) * 100:.2f} ± 0.00" in md  # the table's figure is the CSV's
    png = docs / "accuracy_vs_bytes_sst2.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "--datasets", "sst2", "--methods", "bogus"])
    assert exit_.value.code == 2 and "bogus" in capsys.readouterr().err
    assert main(["sweep"]) == 2  # neither --grid nor --datasets


def test_dataset_specific_training_config_wins_over_the_models():
    from training.architectures import ARCHITECTURES
    from training.sweep import SweepConfig

    block = {"datasets": ["trec", "sst2"], "methods": ["full"]}
    cfg = SweepConfig(blocks=[block], train={"trec:dan": {"epochs": 30, "lr": 2e-3}, "dan": {"epochs": 3}})
    assert cfg.fit_config("train", "trec", "dan").epochs == 30
    assert cfg.fit_config("train", "sst2", "dan").epochs == 3
    assert cfg.fit_config("train", "sst2", "cnn") == ARCHITECTURES["cnn"].train
    assert cfg.fit_config("retrain", "trec", "dan") == ARCHITECTURES["dan"].retrain
    with pytest.raises(ValueError, match="unknown model"):
        SweepConfig(blocks=[block], train={"trec:nope": {"epochs": 1}})
