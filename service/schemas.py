"""Request and response bodies (separate models, validated in Rust by pydantic-core)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slimtext.manifest import NAME_PATTERN, Manifest


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # "2" is not an integer, 1 is not a string
        json_schema_extra={
            "examples": [{"texts": ["a gorgeous , witty , seductive movie ."]},
                         {"text": "the plot is nowhere near as clever as it thinks", "top_k": 1,
                          "model": "sst2-dan-lowrank"}],
            # exactly one of the two, as the validator below enforces
            "oneOf": [{"required": ["texts"]}, {"required": ["text"]}],
        },
    )

    # typed without `| None`: null is rejected; leaving the field out is how to omit it
    # fail_fast: the first wrong element ends validation (a 1 MiB list of integers is one error, not 500k)
    texts: list[str] = Field(default=None, min_length=1, fail_fast=True, description="texts to classify")
    text: str = Field(default=None, description="one text (instead of texts)")
    model: str = Field(default=None, pattern=NAME_PATTERN, description="model name; the default model if omitted")
    version: str = Field(default=None, pattern=r"^[0-9]{1,9}$",
                         description="model version (a folder models/<name>/<version>/); the highest if omitted")
    top_k: int = Field(default=None, ge=1, le=1000, description="also list the k most likely labels")

    @field_validator("top_k", mode="before")
    @classmethod
    def _integral_float(cls, v):
        """JSON Schema counts 3.0 as an integer; strict mode alone would not."""
        return int(v) if isinstance(v, float) and v.is_integer() else v

    @model_validator(mode="after")
    def _one_of(self) -> ClassifyRequest:
        if (self.texts is None) == (self.text is None):
            raise ValueError("give exactly one of 'texts' (a non-empty list) or 'text'")
        return self

    def all_texts(self) -> list[str]:
        return self.texts if self.texts is not None else [self.text]  # type: ignore[list-item]


class LabelScore(BaseModel):
    label: str
    score: float


class TextPrediction(BaseModel):
    label: str = Field(description="most likely label")
    score: float = Field(description="its probability")
    probabilities: dict[str, float] = Field(description="every label's probability")
    n_tokens: int = Field(description="tokens the model saw; 0 means the text had no tokens and the "
                                      "prediction is the model's prior (bias-only) answer")
    top_k: list[LabelScore] | None = None


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model": "sst2-dan-lowrank",
        "predictions": [{"label": "positive", "score": 0.9722,
                         "probabilities": {"negative": 0.0278, "positive": 0.9722}, "n_tokens": 8}]}]})

    model: str
    version: str | None = Field(default=None, description="the model version that answered")
    predictions: list[TextPrediction]


class ModelInfo(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    manifest: Manifest
    default: bool
    rss_growth_bytes: int = Field(description="process RSS growth measured while loading this model")
    version: str = Field(default="1", description="the loaded version (folder models/<name>/<version>/)")
    memory_bytes: int = Field(default=0, description="memory charged to it against SLIMTEXT_MEMORY_BUDGET_MB")
    pinned: bool = Field(default=False, description="never evicted (the default model, SLIMTEXT_PINNED_MODELS)")


class RepositoryModel(BaseModel):
    name: str
    version: str
    state: str = Field(description="READY, LOADING or UNAVAILABLE")
    reason: str = Field(description="why it is not READY: not loaded, evicted (memory budget), unloaded, or the "
                                    "load error naming the file")
    sha256: str | None = Field(description="the loaded model.onnx's sha256 (from its checked manifest)")
    memory_bytes: int = Field(description="RSS growth measured at load (at least the ONNX bytes); 0 when not loaded")
    onnx_bytes: int
    pinned: bool
    default: bool
    loads: int = Field(description="times this version was loaded since start")


class ModelsResponse(BaseModel):
    default: str | None = Field(description="the model a request naming none gets (null: none configured)")
    default_reason: str = Field(default="", description="why: SLIMTEXT_DEFAULT_MODEL, aliases.json, the only model")
    models: list[ModelInfo] = Field(description="the loaded models (each one's highest version)")
    errors: dict[str, str] = Field(description="model folders that were not served, and why")
    repository: list[RepositoryModel] = Field(default_factory=list,
                                              description="every model folder and version, loaded or not")
    memory_budget_bytes: int | None = None
    memory_used_bytes: int = 0


class ErrorResponse(BaseModel):
    error: str = Field(description="machine-readable code")
    message: str
    details: list | None = None


# --- KServe Open Inference Protocol v2 -------------------------------------------------------------
class V2Tensor(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(max_length=256)
    shape: list[int] = Field(min_length=1, max_length=2, fail_fast=True,
                             description="[N] or [N, 1] for N texts: N must equal len(data)")
    datatype: str = Field(pattern="^BYTES$", description="texts travel as BYTES")
    data: list[str] = Field(min_length=1, fail_fast=True)
    parameters: dict | None = None

    @model_validator(mode="after")
    def _shape_matches(self) -> V2Tensor:
        if self.shape[0] != len(self.data) or self.shape[1:] not in ([], [1]):
            raise ValueError(f"shape {self.shape} does not match {len(self.data)} data elements (want [N] or [N, 1])")
        return self


class V2RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["label", "probabilities"]
    parameters: dict | None = None


class V2InferRequest(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                                                     "data": ["a gorgeous , witty , seductive movie .",
                                                              "a dull , lifeless mess ."]}]}]},
    )

    id: str | None = Field(default=None, max_length=256)
    model_name: str | None = Field(default=None, max_length=256, description="ignored: the path names the model")
    model_version: str | None = Field(default=None, max_length=64, description="ignored: one version, 1")
    parameters: dict | None = None
    inputs: list[V2Tensor] = Field(min_length=1, max_length=1, fail_fast=True, description="one BYTES tensor of texts")
    outputs: list[V2RequestedOutput] | None = Field(default=None, max_length=2, fail_fast=True,
                                                    description="label and/or probabilities")

    def all_texts(self) -> list[str]:
        return self.inputs[0].data


class V2OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list


class V2InferResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2OutputTensor]


class V2ErrorResponse(BaseModel):
    error: str = Field(description="what went wrong, for people (the protocol's error shape)")
    code: str = Field(description="machine-readable code, as `error` in the native API")


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


def inline_schema(model: type[BaseModel]) -> dict:
    """The model's JSON schema with every `$ref` to its `$defs` inlined, for `openapi_extra`."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].split("/")[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


# GET /stats: the model page's data (service/routes/ui.py)
class Latency(BaseModel):
    p50_ms: float = Field(description="median server time per request (ms), interpolated in the histogram bucket")
    p99_ms: float = Field(description="99th percentile server time per request (ms), interpolated likewise")


class ModelStats(BaseModel):
    name: str
    kind: str
    architecture: str
    dataset: str
    labels: list[str]
    default: bool
    rank: int | None
    onnx_bytes: int
    params: int
    embedding_compression: float
    rss_growth_bytes: int = Field(description="process RSS growth while loading the model")
    dev_accuracy: float | None
    test_accuracy: float | None
    requests: int = Field(description="classification requests answered by this model since start (any status)")
    errors: int = Field(description="of which answered with a 4xx/5xx status")
    latency: Latency | None = Field(description="null until the model has served a request")


class Stats(BaseModel):
    default: str | None
    models: list[ModelStats]
