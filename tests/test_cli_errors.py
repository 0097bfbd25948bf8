"""Every subcommand turns a user error into one line on stderr that names the file or flag, and exits 2
(no traceback); `--version`; defaults shown in `--help`. Errors are raised before any training."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from training.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny labelled dataset folder, plus broken files next to it."""
    root = tmp_path_factory.mktemp("cli-errors")
    folder = root / "tiny"
    folder.mkdir()
    rows = "label\ttext\n" + "".join(f"{'pos' if i % 2 else 'neg'}\tword{i} good film\n" for i in range(40))
    for split in ("train", "dev", "test"):
        (folder / f"{split}.tsv").write_text(rows)
    (root / "latin1.tsv").write_bytes("label\ttext\npos\tcaf\xe9\n".encode("latin-1"))
    (root / "other-labels.tsv").write_text("label\ttext\nthumbs up\tgood\n")
    (root / "no-label.tsv").write_text("stars\ttext\n5\tgood\n")
    return root


def _one_error_line(capsys, *names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert "error" in err
    for name in names:
        assert name in err, (name, err)
    return err


@pytest.mark.parametrize(("argv", "names"), [
    (["train", "--data", "{root}/missing", "--out", "{tmp}/x"], ["missing"]),
    (["train", "--data", "{root}/tiny", "--text-col", "review", "--out", "{tmp}/x"], ["train.tsv", "review"]),
    (["train", "--data", "{root}/tiny", "--dataset", "sst2", "--out", "{tmp}/x"], ["--data", "--dataset"]),
    (["train", "--data", "{root}/tiny", "--limit-train", "3", "--out", "{tmp}/x"], ["limit_train"]),
    (["train", "--data", "{root}/tiny", "--model", "gpt", "--out", "{tmp}/x"], ["--model", "gpt"]),
    (["train", "--data", "{root}/tiny", "--seed", "one", "--out", "{tmp}/x"], ["--seed", "one"]),
    (["run", "--data", "{root}/tiny", "--reduction", "1.5", "--out", "{tmp}/m"], ["reduction"]),
    (["run", "--data", "{root}/tiny", "--name", "Bad Name", "--out", "{tmp}/m"], ["Bad Name"]),
    (["run", "--data", "{root}/tiny", "--method", "zip", "--out", "{tmp}/m"], ["--method", "zip"]),
    (["compress", "--run", "{root}/tiny", "--method", "online", "--reduction", "0.9", "--out", "{tmp}/c"],
     ["config.json"]),
    (["export", "--run", "{root}/nothing", "--name", "x"], ["nothing"]),
    (["evaluate", "{root}/nothing"], ["nothing"]),
    (["sweep", "--datasets", "sst2", "--methods", "bogus"], ["bogus"]),
    (["sweep", "--datasets", "sst2", "--reductions", "2"], ["reductions"]),
    (["sweep", "--grid", "{root}/grid.json"], ["grid.json"]),
    (["sweep", "--datasets", "nope", "--data-root", "{root}", "--out", "{tmp}/s"], ["nope", "train"]),
    (["report", "--csv", "{root}/none.csv"], ["none.csv"]),
])
def test_user_errors_are_one_line_naming_the_file_or_flag_and_exit_2(data, tmp_path, capsys, argv, names):
    argv = [a.format(root=data, tmp=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as exit_:  # argparse's own errors exit; the commands' errors return 2
        sys.exit(main(argv))
    assert exit_.value.code == 2
    _one_error_line(capsys, *names)


def test_unreadable_files_and_label_mismatch_in_evaluate(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(data / "tiny"), "--no-glove", "--epochs", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--file", str(data / "latin1.tsv")]) == 2
    _one_error_line(capsys, "latin1.tsv", "UTF-8")
    assert main(["evaluate", str(run), "--file", str(data / "other-labels.tsv")]) == 2
    _one_error_line(capsys, "other-labels.tsv", "thumbs up")
    assert main(["evaluate", str(run), "--file", str(data / "no-label.tsv")]) == 2
    _one_error_line(capsys, "no-label.tsv", "label")
    assert main(["evaluate", str(run), "--split", "dev"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 40
    # the same on the exported folder: its manifest names its data, so --split and --file both work
    models = tmp_path / "models"
    assert main(["export", "--run", str(run), "--out", str(models), "--name", "tiny-full", "--int8"]) == 0
    capsys.readouterr()
    for name in ("tiny-full", "tiny-full-int8"):
        for split in ("dev", "test"):
            assert main(["evaluate", str(models / name), "--split", split]) == 0
            result = json.loads(capsys.readouterr().out)
            assert result["n"] == 40 and result["engine"] == "onnxruntime" and result["file"].endswith(f"{split}.tsv")
        assert main(["evaluate", str(models / name), "--file", str(data / "tiny" / "dev.tsv")]) == 0
        assert json.loads(capsys.readouterr().out)["n"] == 40
        assert main(["evaluate", str(models / name), "--file", str(data / "other-labels.tsv")]) == 2
        _one_error_line(capsys, "other-labels.tsv", "thumbs up")


def test_version_and_defaults_in_help():
    out = subprocess.run([sys.executable, "-m", "training", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("slimtext ")
    text = " ".join(subprocess.run([sys.executable, "-m", "training", "run", "--help"], capture_output=True,
                                   text=True, check=True).stdout.split())  # argparse wraps at the terminal width
    assert "(default: 0.9)" in text and "(default: sst2)" in text and "(default: spacy300)" in text
    assert "--phrases {auto,yes,no}" in text and "(default: auto)" in text
