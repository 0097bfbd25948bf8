"""Run an exported model folder with onnxruntime: tokenizer + session + softmax. No torch.

Used by the service for every request and by training to measure what will be served.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimtext.manifest import MANIFEST_FILE, MODEL_FILE, TEXT_INPUT, TEXT_OUTPUTS, VOCAB_FILE, Manifest
from slimtext.safefs import DEFAULT_LIMITS, FileLimits, FileRejected, open_capped, read_fd
from slimtext.tokenizer import Tokenizer

_LOGITS, _PROBS = ["logits"], ["probabilities"]


class ModelLoadError(Exception):
    """A model folder that cannot be served; the message names the file and the reason."""


_VOCAB_SLACK = 1024  # tokens that themselves contain '",' and the tokenizer config


def _cap_name(field: str) -> str:
    return f"{field} (SLIMTEXT_{field.upper()})"


def _open(folder: Path, name: str, cap: int, field: str) -> int:
    try:
        return open_capped(folder, name, cap, _cap_name(field))
    except FileNotFoundError as e:
        raise ModelLoadError(f"{folder / name}: missing") from e
    except FileRejected as e:
        raise ModelLoadError(str(e)) from e


def _fd_path(fd: int) -> str:
    """A path that opens the very file behind `fd` (Linux /proc; elsewhere /dev/fd)."""
    for root in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(root):
            return f"{root}/{fd}"
    raise ModelLoadError("no /proc/self/fd or /dev/fd to hand onnxruntime the checked file")


def _read(folder: Path, name: str, cap: int, field: str) -> bytes:
    fd = _open(folder, name, cap, field)
    try:
        return read_fd(fd, cap, folder / name, _cap_name(field))
    except FileRejected as e:  # it grew past the cap while being read
        raise ModelLoadError(str(e)) from e
    finally:
        os.close(fd)


def _verify_sha256(fd: int, path: Path, cap: int, expected: str) -> None:
    digest = hashlib.sha256()  # streamed: no copy of the model is held in memory
    try:
        read_fd(fd, cap, path, _cap_name("max_model_bytes"), sink=digest.update)
    except FileRejected as e:
        raise ModelLoadError(str(e)) from e
    if digest.hexdigest() != expected:
        raise ModelLoadError(f"{path}: sha256 differs from manifest.json (file changed or corrupt)")


# one Tokenizer per distinct vocabulary file content: models trained on the same vocabulary (copies, versions,
# per-customer fine-tunes) share it. Served tokenizers are CompactTokenizers (numpy arrays): a SST-2 vocabulary
# (14,752 words) as a dict of Python strings cost 2.0 MB, more than the lowrank model's onnxruntime session.
_VOCABS: weakref.WeakValueDictionary[str, Tokenizer] = weakref.WeakValueDictionary()
_VOCABS_LOCK = threading.Lock()


def _load_tokenizer(folder: Path, vocab_path: Path, limits: FileLimits, vocab_size: int) -> Tokenizer:
    vocab_bytes = _read(folder, VOCAB_FILE, limits.vocab_bytes, "max_vocab_bytes")
    digest = hashlib.sha256(vocab_bytes).hexdigest()
    with _VOCABS_LOCK:
        tokenizer = _VOCABS.get(digest)
    if tokenizer is None:
        tokenizer = _parse_tokenizer(vocab_bytes, vocab_path, limits)
        with _VOCABS_LOCK:
            tokenizer = _VOCABS.setdefault(digest, tokenizer)
    if len(tokenizer) != vocab_size:
        raise ModelLoadError(f"{vocab_path}: {len(tokenizer)} tokens but manifest.json says {vocab_size}")
    return tokenizer


def shared_vocabularies() -> int:
    """Distinct vocabularies alive in this process (models sharing one count once)."""
    return len(_VOCABS)


def _parse_tokenizer(vocab_bytes: bytes, vocab_path: Path, limits: FileLimits, compact: bool = True) -> Tokenizer:
    """`compact`: numpy arrays (served); False: a dict of Python strings (bench/density.py's "before")."""
    # an upper bound on the entries, counted before parsing (json.loads of millions of strings is the
    # expensive part): every entry but the last is followed by '",'
    if vocab_bytes.count(b'",') > limits.vocab_entries + _VOCAB_SLACK:
        raise ModelLoadError(f"{vocab_path}: more than {limits.vocab_entries} entries, over the cap "
                             f"{_cap_name('max_vocab_entries')}={limits.vocab_entries}")
    try:
        return Tokenizer.loads(vocab_bytes, vocab_path, compact=compact)
    except ValueError as e:
        raise ModelLoadError(str(e)) from e


@dataclass
class Prediction:
    probs: np.ndarray  # (B, C) float32
    lengths: np.ndarray  # (B,) tokens actually used per text


def _read_manifest(folder: Path, limits: FileLimits) -> Manifest:
    try:
        raw = _read(folder, MANIFEST_FILE, limits.manifest_bytes, "max_manifest_bytes")
        manifest = Manifest.model_validate_json(raw)
    except ValueError as e:
        raise ModelLoadError(f"{folder / MANIFEST_FILE}: invalid manifest: {e}") from e
    if manifest.vocab_size > limits.vocab_entries:
        raise ModelLoadError(f"{folder / MANIFEST_FILE}: vocab_size {manifest.vocab_size} over the cap "
                             f"{_cap_name('max_vocab_entries')}={limits.vocab_entries}")
    return manifest


def _session_options(intra_op_threads: int, cpu_arena: bool):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = cpu_arena
    # fold DequantizeLinear of constant int8 weights into fp32 once at load (int8-weights-per-row
    # models): onnxruntime otherwise keeps them for QDQ fusion and dequantizes on every run
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    return opts


class OnnxClassifier:
    takes_text = False  # the graph takes token ids; TextGraphClassifier's takes strings

    def __init__(self, folder: str | Path, intra_op_threads: int = 1, verify_sha256: bool = True,
                 limits: FileLimits = DEFAULT_LIMITS, cpu_arena: bool = True):
        """Every file is read through slimtext.safefs: no symlink followed, regular files only, each
        under its size cap before it is parsed (the folder is untrusted input). `cpu_arena=False` turns
        off onnxruntime's per-session memory arena (less memory per loaded model: docs/density.md)."""
        import onnxruntime as ort

        folder = Path(folder)
        self.folder = folder
        self.manifest = _read_manifest(folder, limits)
        model_path, vocab_path = folder / MODEL_FILE, folder / VOCAB_FILE
        model_fd = _open(folder, MODEL_FILE, limits.model_bytes, "max_model_bytes")
        try:
            if verify_sha256:
                _verify_sha256(model_fd, model_path, limits.model_bytes, self.manifest.sha256)
            self.tokenizer = _load_tokenizer(folder, vocab_path, limits, self.manifest.vocab_size)
            opts = _session_options(intra_op_threads, cpu_arena)
            try:
                # the descriptor that was checked and hashed, not the name: a file swapped in since is not
                # loaded. Given a path, onnxruntime keeps no second copy of the serialized model (SST-2 full
                # model: 5.1 MB per extra copy, against 8.5 MB when handed the bytes)
                self.session = ort.InferenceSession(_fd_path(model_fd), opts, providers=["CPUExecutionProvider"])
            except Exception as e:  # onnxruntime raises its own exception types for corrupt files
                raise ModelLoadError(f"{model_path}: onnxruntime cannot load it: {e}") from e
        finally:
            os.close(model_fd)
        self._check_graph(model_path)
        self.labels = self.manifest.labels

    def _check_graph(self, model_path: Path) -> None:
        names = [i.name for i in self.session.get_inputs()]
        if names != ["input_ids", "lengths"]:
            raise ModelLoadError(f"{model_path}: inputs {names}, expected ['input_ids', 'lengths']")
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs != ["logits", "probabilities"]:
            raise ModelLoadError(f"{model_path}: outputs {outputs}, expected ['logits', 'probabilities']")
        ids, lengths = self.tokenizer.encode_batch(["probe"])
        logits = self.logits(ids, lengths)
        if logits.shape[1] != len(self.manifest.labels):
            raise ModelLoadError(f"{model_path}: {logits.shape[1]} outputs but manifest.json lists "
                                 f"{len(self.manifest.labels)} labels")
        self._check_vocab_rows(model_path)

    def _check_vocab_rows(self, model_path: Path) -> None:
        """The last vocabulary id must be a valid embedding row: a Gather past the table fails."""
        ids = np.array([[len(self.tokenizer) - 1]], dtype=np.int64)
        try:
            self.session.run(None, {"input_ids": ids, "lengths": np.array([1], dtype=np.int64)})
        except Exception as e:
            raise ModelLoadError(f"{model_path}: embedding has fewer rows than the {len(self.tokenizer)}-word "
                                 f"vocabulary: {e}") from e

    def logits(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self.session.run(_LOGITS, {"input_ids": ids, "lengths": lengths})[0]

    def probabilities(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Softmax of the logits, computed inside the graph."""
        return self.session.run(_PROBS, {"input_ids": ids, "lengths": lengths})[0]

    def predict(self, texts: list[str]) -> Prediction:
        ids, lengths = self.tokenizer.encode_batch(texts)
        return Prediction(self.probabilities(ids, lengths), lengths)

    def accuracy(self, texts: list[str], labels: list[str], batch_size: int = 256) -> float:
        index = {lab: i for i, lab in enumerate(self.labels)}
        correct = 0
        for i in range(0, len(texts), batch_size):
            probs = self.predict(texts[i: i + batch_size]).probs
            gold = np.array([index.get(lab, -1) for lab in labels[i: i + batch_size]])
            correct += int((probs.argmax(1) == gold).sum())
        return correct / len(texts)


# --- the string-input model (issue 27): tokenizer and label names inside the graph --------------------------------
_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8_safe(texts: list[str]) -> list[str]:
    """onnxruntime takes UTF-8: a lone surrogate (valid in a Python str, not in UTF-8) becomes U+FFFD, which the
    tokenizer treats the same way (one token of its own, <unk> unless the vocabulary holds it)."""
    return [_SURROGATE.sub("\ufffd", t) if not t.isascii() and _SURROGATE.search(t) else t for t in texts]


class TextGraphClassifier:
    """A folder's string-input model (manifest.json's `text_model`, e.g. model.text.onnx) run by onnxruntime: raw
    strings in, probabilities, label names and token counts out. No vocab.json, no Python tokenizer."""

    takes_text = True

    def __init__(self, folder: str | Path, intra_op_threads: int = 1, verify_sha256: bool = True,
                 limits: FileLimits = DEFAULT_LIMITS, cpu_arena: bool = True):
        import onnxruntime as ort

        folder = Path(folder)
        self.folder = folder
        self.manifest = _read_manifest(folder, limits)
        text_model = self.manifest.text_model
        if text_model is None:
            raise ModelLoadError(f"{folder / MANIFEST_FILE}: names no text_model (string-input model file)")
        path = folder / text_model.file
        fd = _open(folder, text_model.file, limits.model_bytes, "max_model_bytes")
        try:
            if verify_sha256:
                _verify_sha256(fd, path, limits.model_bytes, text_model.sha256)
            try:
                self.session = ort.InferenceSession(_fd_path(fd), _session_options(intra_op_threads, cpu_arena),
                                                    providers=["CPUExecutionProvider"])
            except Exception as e:
                raise ModelLoadError(f"{path}: onnxruntime cannot load it: {e}") from e
        finally:
            os.close(fd)
        self.labels = self.manifest.labels
        self._check_graph(path)

    def _check_graph(self, path: Path) -> None:
        names = [i.name for i in self.session.get_inputs()]
        if names != [TEXT_INPUT]:
            raise ModelLoadError(f"{path}: inputs {names}, expected [{TEXT_INPUT!r}]")
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs[:3] != TEXT_OUTPUTS:
            raise ModelLoadError(f"{path}: outputs {outputs}, expected {TEXT_OUTPUTS}")
        probs, labels, _ = self._run(["probe"])
        if probs.shape[1] != len(self.labels) or labels[0] not in self.labels:
            raise ModelLoadError(f"{path}: {probs.shape[1]} outputs, label {labels[0]!r}, but manifest.json lists "
                                 f"{self.labels}")

    def _run(self, texts: list[str]) -> list[np.ndarray]:
        return self.session.run(TEXT_OUTPUTS, {TEXT_INPUT: np.array(_utf8_safe(texts), dtype=object)})

    def predict(self, texts: list[str]) -> Prediction:
        if not texts:
            return Prediction(np.zeros((0, len(self.labels)), dtype=np.float32), np.zeros(0, dtype=np.int64))
        probs, _, lengths = self._run(texts)
        return Prediction(probs, lengths)

    def predict_labels(self, texts: list[str]) -> list[str]:
        """The most likely label of each text, named inside the graph."""
        return self._run(texts)[1].tolist() if texts else []

    accuracy = OnnxClassifier.accuracy


def open_classifier(folder: str | Path, prefer_text: bool = False, **kwargs) -> OnnxClassifier | TextGraphClassifier:
    """The folder's id-input model (model.onnx + vocab.json) or its string-input model: the string-input one when
    `prefer_text` and the manifest names one, or when the folder holds no model.onnx (a string-only folder)."""
    folder = Path(folder)
    try:
        manifest = _read_manifest(folder, kwargs.get("limits", DEFAULT_LIMITS))
    except ModelLoadError:
        return OnnxClassifier(folder, **kwargs)  # it raises the same error
    if manifest.text_model is not None and (prefer_text or not os.path.lexists(folder / MODEL_FILE)):
        return TextGraphClassifier(folder, **kwargs)
    return OnnxClassifier(folder, **kwargs)
