"""The CLI end to end on a user-style CSV (other column names, string labels): train, compress,
export, evaluate, then serve the exported models with a real uvicorn."""

import csv
import json

import httpx
import pytest

from slimtext.data import datasets_root, read_examples
from tests.conftest import Server
from training.cli import main

LABELS = {"positive": "thumbs up", "negative": "thumbs down"}


@pytest.fixture(scope="module")
def user_csv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user-data")
    for split, n in (("train", 1500), ("dev", 300), ("test", 300)):
        ex = read_examples(datasets_root() / "sst2" / f"{split}.tsv")
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "review", "verdict"])
            for i, (text, label) in enumerate(zip(ex.texts[:n], ex.labels[:n], strict=True)):
                w.writerow([i, text, LABELS[label]])
    return folder


def test_train_compress_export_evaluate_and_serve(user_csv, tmp_path, capsys):
    cols = ["--text-col", "review", "--label-col", "verdict"]
    full, low, models = tmp_path / "full", tmp_path / "low", tmp_path / "models"
    assert main(["train", "--data", str(user_csv), *cols, "--model", "dan", "--epochs", "3", "--out", str(full)]) == 0
    results = json.loads((full / "results.json").read_text())
    assert results["labels"] == ["thumbs down", "thumbs up"] and results["dev_acc"] > 0.6
    assert json.loads((full / "config.json").read_text())["data"]["text_col"] == "review"

    assert main(["train", "--data", str(user_csv), *cols, "--epochs", "3", "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert (again["dev_acc"], again["test_acc"]) == (results["dev_acc"], results["test_acc"])  # same seed

    assert main(["compress", "--run", str(full), "--method", "online", "--reduction", "0.9",
                 "--retrain-epochs", "2", "--out", str(low)]) == 0
    compressed = json.loads((low / "results.json").read_text())
    assert compressed["rank"] >= 1 and compressed["embedding_bytes_reduction"] >= 0.9

    assert main(["export", "--run", str(full), "--out", str(models), "--name", "user-dan-full"]) == 0
    assert main(["export", "--run", str(low), "--out", str(models), "--name", "user-dan-lowrank"]) == 0
    manifest = json.loads((models / "user-dan-lowrank" / "manifest.json").read_text())
    assert manifest["kind"] == "lowrank" and manifest["labels"] == ["thumbs down", "thumbs up"]
    assert abs(manifest["accuracy"]["test"] - compressed["test_acc"]) < 1e-6  # onnxruntime == PyTorch

    capsys.readouterr()
    assert main(["evaluate", str(models / "user-dan-lowrank"), "--split", "dev"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(compressed["dev_acc"], abs=1e-6)

    server = Server(models)
    try:
        server.wait_ready()
        names = httpx.get(f"{server.url}/models", timeout=5).text
        assert "user-dan-full" in names and "user-dan-lowrank" in names
        r = httpx.post(f"{server.url}/classify", timeout=5,
                       json={"texts": ["a gorgeous , witty , seductive movie .", "dull , lifeless and boring ."],
                             "model": "user-dan-lowrank"})
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert [p["label"] for p in preds] == ["thumbs up", "thumbs down"]
    finally:
        server.stop()


def test_cli_reports_configuration_errors_in_one_line(user_csv, tmp_path, capsys):
    assert main(["train", "--data", str(user_csv), "--out", str(tmp_path / "x")]) == 2  # default columns absent
    assert "missing column" in capsys.readouterr().err
    assert main(["train", "--data", str(user_csv), "--dataset", "sst2", "--out", str(tmp_path / "y")]) == 2
    with pytest.raises(SystemExit):
        main(["train", "--data", str(user_csv), "--model", "gpt", "--out", str(tmp_path / "z")])


@pytest.mark.parametrize(("model", "method", "suffix", "kind"), [("cnn", "online", "lowrank", "lowrank"),
                                                                 ("bilstm", "int4", "int4", "full")])
def test_run_takes_any_architecture_and_method(tmp_path, model, method, suffix, kind):
    models = tmp_path / "models"
    assert main(["run", "--dataset", "sst2", "--vectors", "glove50", "--limit-train", "300", "--model", model,
                 "--method", method,
                 "--epochs", "1", "--retrain-epochs", "1", "--no-int8", "--threads", "1", "--out", str(models)]) == 0
    assert sorted(p.name for p in models.iterdir()) == ["aliases.json", f"sst2-{model}-full", f"sst2-{model}-{suffix}"]
    assert json.loads((models / "aliases.json").read_text()) == {"default": f"sst2-{model}-{suffix}"}
    m = json.loads((models / f"sst2-{model}-{suffix}" / "manifest.json").read_text())
    assert (m["architecture"], m["method"], m["kind"]) == (model, method, kind)
    assert m["quantization"] == (None if method == "online" else "sim-int4-per-row-embedding")
