"""A bad model folder: a clear error naming the file; the other models are still served."""

import json
import shutil

import pytest

from service.registry import ModelRegistry, RegistryConfig
from slimtext.manifest import Manifest
from slimtext.runtime import ModelLoadError, OnnxClassifier


@pytest.fixture
def models_copy(quick_run, tmp_path):
    src, _ = quick_run
    for kind in ("full", "lowrank"):
        shutil.copytree(src / f"sst2-dan-{kind}", tmp_path / f"sst2-dan-{kind}")
    return tmp_path


def test_corrupt_onnx(models_copy):
    path = models_copy / "sst2-dan-full" / "model.onnx"
    path.write_bytes(b"not an onnx file")
    m = Manifest.load(path.parent)
    from slimtext.manifest import sha256_file
    m.model_copy(update={"sha256": sha256_file(path)}).save(path.parent)  # so only the content is wrong
    with pytest.raises(ModelLoadError, match="model.onnx: onnxruntime cannot load"):
        OnnxClassifier(path.parent)


def test_sha256_mismatch(models_copy):
    path = models_copy / "sst2-dan-full" / "model.onnx"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelLoadError, match="model.onnx: sha256 differs"):
        OnnxClassifier(path.parent)


def test_missing_manifest(models_copy):
    (models_copy / "sst2-dan-full" / "manifest.json").unlink()
    with pytest.raises(ModelLoadError, match="manifest.json: missing"):
        OnnxClassifier(models_copy / "sst2-dan-full")


def test_label_count_disagrees_with_outputs(models_copy):
    folder = models_copy / "sst2-dan-full"
    data = json.loads((folder / "manifest.json").read_text())
    data["labels"] = ["a", "b", "c"]
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="2 outputs but manifest.json lists 3 labels"):
        OnnxClassifier(folder)


def test_vocabulary_larger_than_embedding(models_copy):
    folder = models_copy / "sst2-dan-full"
    vocab = json.loads((folder / "vocab.json").read_text())
    vocab["itos"] += [f"extra{i}" for i in range(10)]
    (folder / "vocab.json").write_text(json.dumps(vocab))
    data = json.loads((folder / "manifest.json").read_text())
    data["vocab_size"] = len(vocab["itos"])
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="fewer rows than the"):
        OnnxClassifier(folder)


def test_registry_serves_the_good_ones_and_reports_the_bad(models_copy):
    (models_copy / "sst2-dan-full" / "model.onnx").write_bytes(b"junk")
    registry = ModelRegistry.load(RegistryConfig(models_copy))
    assert sorted(registry.models) == ["sst2-dan-lowrank"]
    assert "sst2-dan-full" in registry.errors and "model.onnx" in registry.errors["sst2-dan-full"]
    with pytest.raises(ModelLoadError, match="model.onnx"):
        ModelRegistry.load(RegistryConfig(models_copy, strict=True))


def test_unknown_default_model_fails(models_copy):
    with pytest.raises(ModelLoadError, match="default model 'nope'"):
        ModelRegistry.load(RegistryConfig(models_copy, default="nope"))
