"""The models folder is untrusted input: symlinks, special files and oversized files are refused before
they are read, with a log line naming the file and the cap; the good folders are still served, and
only strict mode stops start-up."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time

import httpx
import pytest

from service.registry import ModelRegistry, RegistryConfig
from slimtext.manifest import MANIFEST_FILE, MODEL_FILE, VOCAB_FILE
from slimtext.runtime import ModelLoadError, OnnxClassifier
from slimtext.safefs import FileLimits, FileRejected, read_capped
from tests.conftest import Server

GOOD = "sst2-dan-lowrank"


def clone(src, root, name):
    """A copy of a served model folder under another name (the manifest's name follows the folder)."""
    dst = root / name
    shutil.copytree(src, dst)
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    manifest["name"] = name
    (dst / MANIFEST_FILE).write_text(json.dumps(manifest))
    return dst


def write_big_vocab(path, entries: int) -> None:
    """A syntactically valid vocab.json with `entries` tokens, written in chunks (about 12 bytes each)."""
    with open(path, "w") as f:
        f.write('{"tokenizer": {}, "itos": ["<pad>", "<unk>"')
        step = 500_000
        for start in range(2, entries, step):
            f.write("".join(f', "w{i}"' for i in range(start, min(entries, start + step))))
        f.write("]}")


@pytest.fixture(scope="module")
def bad_models(quick_run, tmp_path_factory):
    """One good folder and one folder per kind of hostile content (read-only for the tests)."""
    tmp_path = tmp_path_factory.mktemp("untrusted")
    src = quick_run[0] / GOOD
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(src, root / GOOD)
    outside = tmp_path / "outside"
    shutil.copytree(src, outside)

    (clone(src, root, "bad-zero") / VOCAB_FILE).unlink()
    os.symlink("/dev/zero", root / "bad-zero" / VOCAB_FILE)  # was: read until MemoryError, start-up stopped

    (clone(src, root, "bad-escape") / MODEL_FILE).unlink()
    os.symlink(outside / MODEL_FILE, root / "bad-escape" / MODEL_FILE)  # a valid file, but out of the folder

    write_big_vocab(clone(src, root, "bad-vocab") / VOCAB_FILE, 5_000_000)

    big = clone(src, root, "bad-manifest") / MANIFEST_FILE
    manifest = json.loads(big.read_text())
    manifest["training"]["padding"] = "x" * (2 << 20)  # a 2 MiB manifest would be served on every GET /models
    big.write_text(json.dumps(manifest))

    (clone(src, root, "bad-fifo") / MODEL_FILE).unlink()
    os.mkfifo(root / "bad-fifo" / MODEL_FILE)  # opening it for reading would block forever

    os.symlink(outside, root / "bad-linked-folder")  # a whole folder symlinked from elsewhere
    return root


EXPECTED = {
    "bad-zero": r"vocab.json: is a symlink \(to '/dev/zero'\); not followed",
    "bad-escape": r"model.onnx: is a symlink .*; not followed",
    "bad-vocab": r"vocab.json: more than 2000000 entries, over the cap max_vocab_entries \(SLIMTEXT_MAX_VOC",
    "bad-manifest": r"manifest.json: \d+ bytes, over the cap max_manifest_bytes \(SLIMTEXT_MAX_MANIFEST_BYTES\)=1",
    "bad-fifo": r"model.onnx: not a regular file \(a FIFO\)",
    "bad-linked-folder": r"bad-linked-folder: the folder is a symlink; not followed",
}


def test_each_hostile_folder_is_skipped_with_a_log_line_and_the_good_one_served(bad_models, caplog):
    caplog.set_level(logging.ERROR, logger="slimtext.registry")
    t0 = time.perf_counter()
    registry = ModelRegistry.load(RegistryConfig(bad_models))
    elapsed = time.perf_counter() - t0
    assert sorted(registry.models) == [GOOD]
    assert sorted(registry.errors) == sorted(EXPECTED)
    for name, pattern in EXPECTED.items():
        assert re.search(pattern, registry.errors[name]), (name, registry.errors[name])
        lines = [r.getMessage() for r in caplog.records if f"model {name} not served" in r.getMessage()]
        assert len(lines) == 1 and str(bad_models / name) in lines[0], (name, lines)
    assert elapsed < 15, f"loading took {elapsed:.1f} s"  # the 5M-entry vocab is refused before parsing
    probs = registry.get(GOOD).classifier.predict(["a gorgeous , witty , seductive movie ."]).probs
    assert probs.shape == (1, 2)


def test_strict_mode_stops_at_the_first_hostile_folder(bad_models):
    with pytest.raises(ModelLoadError, match="not followed|over the cap|not a regular file"):
        ModelRegistry.load(RegistryConfig(bad_models, strict=True))


def test_caps_are_configurable_and_checked_before_reading(quick_run, tmp_path):
    folder = clone(quick_run[0] / GOOD, tmp_path, "capped")
    model_bytes = (folder / MODEL_FILE).stat().st_size
    with pytest.raises(ModelLoadError, match=rf"model.onnx: {model_bytes} bytes, over the cap max_model_bytes"):
        OnnxClassifier(folder, limits=FileLimits(model_bytes=model_bytes - 1))
    with pytest.raises(ModelLoadError, match="manifest.json: vocab_size .* over the cap max_vocab_entries"):
        OnnxClassifier(folder, limits=FileLimits(vocab_entries=10))
    assert OnnxClassifier(folder, limits=FileLimits(model_bytes=model_bytes)).labels


def test_read_capped_refuses_names_that_leave_the_folder(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert read_capped(tmp_path, "f", 3, "cap") == b"abc"
    for name in ("../f", "", ".."):
        with pytest.raises(FileRejected, match="not a plain file name"):
            read_capped(tmp_path / "sub", name, 10, "cap")
    with pytest.raises(FileNotFoundError):
        read_capped(tmp_path, "missing", 10, "cap")


def test_server_starts_serves_the_good_model_and_hides_paths(bad_models):
    srv = Server(bad_models)
    try:
        srv.wait_ready()
        r = httpx.post(f"{srv.url}/classify", json={"texts": ["a gorgeous , witty , seductive movie ."]})
        assert r.status_code == 200 and r.json()["model"] == GOOD
        body = httpx.get(f"{srv.url}/models").json()
        assert [m["manifest"]["name"] for m in body["models"]] == [GOOD]
        assert sorted(body["errors"]) == sorted(EXPECTED)
        text = json.dumps(body)
        assert str(bad_models) not in text and "/dev/zero" not in text and str(bad_models.parent) not in text
        assert body["errors"]["bad-fifo"].startswith("bad-fifo/model.onnx: not a regular file")
    finally:
        log = srv.stop()
    assert "bad-manifest not served" in log and "SLIMTEXT_MAX_MANIFEST_BYTES" in log


def test_strict_server_does_not_start(bad_models):
    srv = Server(bad_models, env={"SLIMTEXT_STRICT": "true"})
    with pytest.raises(RuntimeError, match="uvicorn exited"):
        srv.wait_ready()
    assert "not followed" in srv.stop() or "over the cap" in srv.output()


def test_the_checked_file_is_the_one_loaded(quick_run, tmp_path, monkeypatch):
    """onnxruntime gets the descriptor that was size-checked and hashed, not the name: a model.onnx
    swapped in right after the sha256 check is not what gets loaded."""
    import numpy as np

    import slimtext.runtime as runtime

    folder = clone(quick_run[0] / "sst2-dan-lowrank", tmp_path, "sst2-dan-lowrank")
    checked = runtime._verify_sha256

    def check_then_swap(fd, path, cap, expected):
        checked(fd, path, cap, expected)
        swap = path.with_suffix(".swap")
        swap.write_bytes(b"not an onnx model")
        os.replace(swap, path)  # the name now points at garbage

    monkeypatch.setattr(runtime, "_verify_sha256", check_then_swap)
    clf = OnnxClassifier(folder)
    monkeypatch.undo()
    assert (folder / MODEL_FILE).read_bytes() == b"not an onnx model"
    reference = OnnxClassifier(quick_run[0] / "sst2-dan-lowrank")
    texts = ["a gorgeous , witty , seductive movie .", "dull"]
    np.testing.assert_allclose(clf.predict(texts).probs, reference.predict(texts).probs, atol=1e-6)
