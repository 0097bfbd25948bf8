"""Run an exported model folder with onnxruntime: tokenizer + session + softmax. No torch.

Used by the service for every request and by training to measure what will be served.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimtext.manifest import MODEL_FILE, VOCAB_FILE, Manifest, sha256_file
from slimtext.tokenizer import Tokenizer

_LOGITS, _PROBS = ["logits"], ["probabilities"]


class ModelLoadError(Exception):
    """A model folder that cannot be served; the message names the file and the reason."""


@dataclass
class Prediction:
    probs: np.ndarray  # (B, C) float32
    lengths: np.ndarray  # (B,) tokens actually used per text


class OnnxClassifier:
    def __init__(self, folder: str | Path, intra_op_threads: int = 1, verify_sha256: bool = True):
        import onnxruntime as ort

        folder = Path(folder)
        self.folder = folder
        try:
            self.manifest = Manifest.load(folder)
        except FileNotFoundError as e:
            raise ModelLoadError(f"{folder / 'manifest.json'}: missing") from e
        except ValueError as e:
            raise ModelLoadError(f"{folder / 'manifest.json'}: invalid manifest: {e}") from e
        model_path, vocab_path = folder / MODEL_FILE, folder / VOCAB_FILE
        if not model_path.is_file():
            raise ModelLoadError(f"{model_path}: missing")
        if verify_sha256 and sha256_file(model_path) != self.manifest.sha256:
            raise ModelLoadError(f"{model_path}: sha256 differs from manifest.json (file changed or corrupt)")
        try:
            self.tokenizer = Tokenizer.load(vocab_path)
        except ValueError as e:
            raise ModelLoadError(str(e)) from e
        if len(self.tokenizer) != self.manifest.vocab_size:
            raise ModelLoadError(f"{vocab_path}: {len(self.tokenizer)} tokens but manifest.json says "
                                 f"{self.manifest.vocab_size}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        # fold DequantizeLinear of constant int8 weights into fp32 once at load (int8-weights-per-row models):
        # onnxruntime otherwise keeps them for QDQ fusion and dequantizes on every run
        opts.add_session_config_entry("session.disable_quant_qdq", "1")
        try:
            self.session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for corrupt files
            raise ModelLoadError(f"{model_path}: onnxruntime cannot load it: {e}") from e
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

