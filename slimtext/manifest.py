"""`manifest.json`: what an exported model folder holds, validated on both sides.

Training writes it with these models; the service reads it back through the same models,
so a field that one side renames fails loudly on the other.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from slimtext.tokenizer import TokenizerConfig

MODEL_FILE, VOCAB_FILE, MANIFEST_FILE = "model.onnx", "vocab.json", "manifest.json"
# the string-input model (issue 27): the tokenizer and the label names inside the graph; input `text (N,) string`,
# outputs `probabilities (N, C)`, `labels (N,) string` and `lengths (N,)` (tokens used; training/graph_tokenizer.py)
TEXT_MODEL_FILE, TEXT_INPUT, TEXT_OUTPUTS = "model.text.onnx", "text", ["probabilities", "labels", "lengths"]
ALIASES_FILE = "aliases.json"  # in the models folder: {"default": "<model>", "<alias>": "<model>", ...}
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


# what `quantization` in a manifest may say: one name for each kind of "int8"
QUANTIZATIONS = {
    "int8-weights-per-row": "served int8: every weight matrix (the embedding included) stored as symmetric int8 "
                            "with one fp32 scale per row, dequantized in the graph; activations fp32, so answers "
                            "do not depend on batch companions",
    **{f"sim-int{b}-per-row-{scope}": f"simulated {b}-bit per-row quantization of the {scope} weights "
       "(docs/results.md), stored and served dequantized as fp32"
       for b in (8, 4, 2) for scope in ("embedding", "model")},
}


def is_valid_name(name: str) -> bool:
    """Model names are checked against this before they touch the filesystem."""
    return bool(_NAME.match(name))


class ParamCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding: int = Field(ge=0, description="parameters in the embedding (|V|*d, or k*(|V|+d) factorized)")
    embedding_full: int = Field(ge=0, description="|V|*d: the uncompressed embedding's parameters")
    total: int = Field(ge=0)


class Accuracy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dev: float | None = None
    test: float | None = None


class TextModel(BaseModel):
    """The string-input model file of a folder: the tokenizer and label names inside the graph (issue 27)."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(default="model.text.onnx", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}\.onnx$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    ops: list[str] = Field(default_factory=list, description="non-standard ops it needs (domain.op)")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["full", "lowrank", "int8"]
    architecture: str
    dataset: str
    labels: list[str] = Field(min_length=2)
    tokenizer: TokenizerConfig
    vocab_size: int = Field(ge=2)
    embedding_dim: int = Field(ge=1)
    rank: int | None = Field(default=None, ge=1, description="k of the factorization, lowrank only")
    method: str | None = Field(default=None, description="the compression method of the run it was exported from")
    quantization: str | None = Field(default=None, description="a key of QUANTIZATIONS, or none (fp32 weights)")
    params: ParamCounts
    onnx_bytes: int = Field(ge=0)
    param_bytes_by_dtype: dict[str, int] = Field(default_factory=dict, description="initializer bytes per dtype")
    embedding_compression: float = Field(description="1 - embedding params / (|V|*d) (parameters, not bytes)")
    accuracy: Accuracy
    training: dict = Field(default_factory=dict, description="training config, seed and history")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    versions: dict[str, str] = Field(default_factory=dict)
    text_model: TextModel | None = Field(default=None, description=f"{TEXT_MODEL_FILE}, when exported with the "
                                         "tokenizer inside the graph")

    @field_validator("quantization")
    @classmethod
    def _known_quantization(cls, v: str | None) -> str | None:
        if v is not None and v not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {v!r}; known: {sorted(QUANTIZATIONS)}")
        return v

    @classmethod
    def load(cls, folder: str | Path) -> Manifest:
        path = Path(folder) / MANIFEST_FILE
        return cls.model_validate_json(path.read_bytes())

    def save(self, folder: str | Path) -> None:
        (Path(folder) / MANIFEST_FILE).write_text(self.model_dump_json(indent=2))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_default_alias(models_dir: str | Path, name: str) -> bool:
    """Name `name` the default model of `models_dir` (its aliases.json) unless a default is already set there:
    exporting more models never changes which one answers requests that name none. True when written."""
    import json

    path = Path(models_dir) / ALIASES_FILE
    aliases = json.loads(path.read_text()) if path.exists() else {}
    if "default" in aliases:
        return False
    path.write_text(json.dumps({**aliases, "default": name}, indent=2) + "\n")
    return True
