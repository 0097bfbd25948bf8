"""slimtext.load (Python API) and the `slimtext predict` / `slimtext evaluate` commands on real exported
models (the session's quick_run), with onnxruntime; also run where torch and onnx cannot be imported."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import slimtext
from slimtext.cli import main
from slimtext.evaluate import scores
from tests.conftest import ROOT

POSITIVE, NEGATIVE = "a gorgeous , witty , seductive movie .", "an utterly dreadful , boring mess ."
# a subprocess in which `import torch` / `import onnx` fail, as in a serve-only install
NO_TORCH = "import sys; sys.modules.update(torch=None, onnx=None, onnxscript=None); "


@pytest.fixture(scope="module")
def lowrank(quick_run):
    return quick_run[0] / "sst2-dan-lowrank"


def test_load_predict_and_proba(lowrank):
    clf = slimtext.load(lowrank)
    assert clf.labels == ["negative", "positive"] and clf.name == "sst2-dan-lowrank"
    (best,) = clf.predict(POSITIVE)
    assert best.label == "positive" and 0.5 < best.score <= 1
    both = clf.predict([NEGATIVE, POSITIVE], k=5)  # k above the label count: every label, best first
    assert [[p.label for p in top] for top in both] == [["negative", "positive"], ["positive", "negative"]]
    assert all(top[0].score >= top[1].score for top in both)
    probs = clf.predict_proba([NEGATIVE, POSITIVE])
    assert probs.shape == (2, 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert both[1][0].score == pytest.approx(float(probs[1, 1]))
    assert clf.predict_proba([]).shape == (0, 2)
    with pytest.raises(ValueError, match="k must be"):
        clf.predict("x", k=0)
    with pytest.raises(TypeError, match="strings"):
        clf.predict_proba([POSITIVE, 3])


def test_batching_does_not_change_answers(lowrank, sst2):
    texts = sst2["dev"].texts[:70]
    np.testing.assert_allclose(slimtext.load(lowrank, batch_size=16).predict_proba(texts),
                               slimtext.load(lowrank).predict_proba(texts), atol=1e-6)


def test_load_rejects_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(slimtext.ModelLoadError, match="manifest.json: missing"):
        slimtext.load(tmp_path)


def test_readme_python_example_runs(quick_run, tmp_path, monkeypatch, capsys):
    block = re.search(r"```python\n(import slimtext\n.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md has no `import slimtext` example"
    (tmp_path / "models").symlink_to(quick_run[0])
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})
    assert "Label(label='positive'" in capsys.readouterr().out


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_predict_from_stdin_keeps_one_line_per_text(lowrank):
    r = subprocess.run([sys.executable, "-c", NO_TORCH + "from slimtext.cli import main; sys.exit(main())",
                        "predict", str(lowrank), "-k", "2"], input=f"{POSITIVE}\n\n{NEGATIVE}\n",
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = _jsonl(r.stdout)
    assert [row["label"] for row in (rows[0], rows[2])] == ["positive", "negative"] and len(rows) == 3
    assert set(rows[0]) == {"label", "score", "probabilities", "top_k"}
    assert rows[0]["score"] == max(rows[0]["probabilities"].values())
    assert [t["label"] for t in rows[2]["top_k"]] == ["negative", "positive"]


@pytest.mark.parametrize("suffix", ["txt", "csv", "tsv", "jsonl"])
def test_predict_from_files(lowrank, tmp_path, capsys, suffix):
    texts = [POSITIVE, 'he said "dull" , twice', NEGATIVE]
    path = tmp_path / f"in.{suffix}"
    if suffix == "txt":
        path.write_text("\n".join(texts) + "\n")
    elif suffix == "jsonl":
        path.write_text("".join(json.dumps({"id": i, "review": t}) + "\n" for i, t in enumerate(texts)))
    elif suffix == "tsv":  # SST-style: bare quote characters inside texts, no quoting
        path.write_text("id\treview\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    else:
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([["id", "review"], *([i, t] for i, t in enumerate(texts))])
    args = ["predict", str(lowrank), "--file", str(path)] + ([] if suffix == "txt" else ["--text-col", "review"])
    assert main(args) == 0
    rows = _jsonl(capsys.readouterr().out)
    expected = slimtext.load(lowrank).predict_proba(texts)
    assert len(rows) == 3 and "top_k" not in rows[0]
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in rows], expected, atol=1e-6)


def test_predict_errors_are_one_line(lowrank, tmp_path, capsys):
    (tmp_path / "in.csv").write_text("id,body\n1,great\n")
    assert main(["predict", str(lowrank), "--file", str(tmp_path / "in.csv")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'in.csv'}: no column 'text'; found ['id', 'body'] " \
                                               "(use --text-col)"
    assert main(["predict", str(tmp_path), "--file", str(tmp_path / "in.csv")]) == 2
    assert "manifest.json: missing" in capsys.readouterr().err
    assert main(["predict", str(lowrank), "--file", str(tmp_path / "nope.txt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_scores_per_class_and_confusion():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    s = scores(gold, pred, ["a", "b", "c"])
    assert s["confusion"]["matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(0.8),
                                   "support": 3}
    assert s["per_class"]["b"]["precision"] == 0.5 and s["per_class"]["c"]["recall"] == 1.0
    with pytest.raises(ValueError, match=r"\['z'\]"):
        scores(["z"], ["a"], ["a", "b"])


def test_evaluate_serve_only_matches_the_manifest(lowrank, sst2):
    """No torch, no onnx importable: accuracy on the recorded test split equals what training measured."""
    code = NO_TORCH + "from slimtext.cli import main; sys.exit(main())"
    r = subprocess.run([sys.executable, "-c", code, "evaluate", str(lowrank)], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    manifest = json.loads((lowrank / "manifest.json").read_text())
    assert result["n"] == len(sst2["test"]) and result["file"].endswith("test.tsv")
    assert result["accuracy"] == pytest.approx(manifest["accuracy"]["test"], abs=1e-6)
    matrix = np.array(result["confusion"]["matrix"])
    assert matrix.sum() == result["n"] and np.trace(matrix) / matrix.sum() == pytest.approx(result["accuracy"])
    assert set(result["per_class"]) == {"negative", "positive"}


def test_evaluate_text_report_on_a_file(lowrank, tmp_path, capsys):
    path = tmp_path / "holdout.jsonl"
    path.write_text(json.dumps({"y": "positive", "x": POSITIVE}) + "\n" + json.dumps({"y": "negative", "x": NEGATIVE}))
    assert main(["evaluate", str(lowrank), "--file", str(path), "--text-col", "x", "--label-col", "y",
                 "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "n=2, accuracy 1.0000" in out and "confusion matrix (rows: gold, columns: predicted)" in out
    assert re.search(r"^negative\s+1\s+0$", out, re.M) and re.search(r"^positive\s+0\s+1$", out, re.M)


def test_predict_reads_quoted_tsv_like_training_data(lowrank, tmp_path, capsys):
    """A TSV written by the csv module (a field with a tab and quotes gets quoted) reads back as its text,
    the same way slimtext.data reads training and evaluation files."""
    from slimtext.data import read_examples

    texts = [POSITIVE, 'a "quoted"\tfield , dull', NEGATIVE]
    path = tmp_path / "in.tsv"
    with open(path, "w", newline="") as f:
        csv.writer(f, dialect="excel-tab").writerows([["sentence", "label"], *([t, "positive"] for t in texts)])
    assert read_examples(path, text_col="sentence").texts == texts
    assert main(["predict", str(lowrank), "--file", str(path), "--text-col", "sentence"]) == 0
    rows = _jsonl(capsys.readouterr().out)
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in rows],
                               slimtext.load(lowrank).predict_proba(texts), atol=1e-6)


def test_the_core_package_imports_nothing_from_training_or_service():
    """slimtext/ is the torch-free core: the `slimtext` command runs training commands as `python -m training`."""
    import ast

    for path in (ROOT / "slimtext").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad = [n for n in names if n.split(".")[0] in ("training", "service")]
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_training_commands_are_dispatched_to_python_m_training(tmp_path):
    r = subprocess.run([sys.executable, "-m", "slimtext", "sweep", "--help"], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0 and "--backend" in r.stdout and "--grid" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-c", NO_TORCH + "from slimtext.cli import main; sys.exit(main())",
                        "train", "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "needs the train extra" in r.stderr and "torch not installed" in r.stderr
