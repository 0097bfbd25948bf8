"""Typed settings from the environment (prefix SLIMTEXT_); a bad value stops start-up with a clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from slimtext.manifest import NAME_PATTERN
from slimtext.safefs import FileLimits

MIN_KEY_CHARS = 16


def _split_keys(v: object) -> object:
    """"k1,k2" (the environment's form) -> ("k1", "k2"); each key at least MIN_KEY_CHARS, no blanks."""
    if isinstance(v, str):
        v = [k.strip() for k in v.split(",") if k.strip()]
    if isinstance(v, list | tuple):
        short = [i for i, k in enumerate(v) if not isinstance(k, str) or len(k) < MIN_KEY_CHARS]
        if short:
            raise ValueError(f"key(s) at position {short} shorter than {MIN_KEY_CHARS} characters")
        return tuple(v)
    return v


def _split_names(v: object) -> object:
    if isinstance(v, str):
        v = tuple(k.strip() for k in v.split(",") if k.strip())
    return v


NamesList = Annotated[tuple[Annotated[str, Field(pattern=NAME_PATTERN)], ...], NoDecode,
                      BeforeValidator(_split_names)]
SecretKeys = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_keys)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLIMTEXT_", extra="ignore", frozen=True,
                                      hide_input_in_errors=True)  # a bad key must not be echoed into a log

    models_dir: Path = Field(default=Path("models"), description="folder of model folders to serve")
    default_model: str | None = Field(default=None, pattern=NAME_PATTERN,
                                      description="model used when a request names none; default: aliases.json's "
                                                  "\"default\" in the models folder, else the only model")
    intra_op_threads: int = Field(default=1, ge=1, le=64, description="onnxruntime threads per session")
    strict: bool = Field(default=False, description="any bad model folder stops start-up")
    max_texts: int = Field(default=256, ge=1, le=100_000, description="texts per request")
    max_chars: int = Field(default=10_000, ge=1, description="characters per text")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="request body size (/classify, v2 infer)")
    max_control_body_bytes: int = Field(default=16_384, ge=0, le=1_048_576,
                                        description="request body size of every other route (repository, health, ...)")
    batching: bool = Field(default=False, description="coalesce concurrent requests per model into one run")
    batch_max_texts: int = Field(default=64, ge=2, le=4096, description="texts per coalesced batch")
    batch_max_wait_us: int = Field(default=500, ge=0, le=1_000_000, description="longest wait for a batch to fill")
    offload_min_texts: int = Field(default=64, ge=1,
                                   description="requests with this many texts are tokenized and run in a worker thread")
    offload_min_chars: int = Field(
        default=4096, ge=0,
        description="requests with this many characters of text in all are tokenized and run in a worker thread; "
                    "below both thresholds a request runs on the event loop (at most 1.2-2.0 ms of CPU measured here, "
                    "for contraction-heavy text; 32 SST-2 sentences 0.4-0.75 ms; handing those to the thread cost a "
                    "third of their texts/s: docs/tail.md, python -m bench.loop_bound)")
    # reliability (service/admission.py, service/offload.py, service/protocol.py)
    offload_min_body_bytes: int = Field(default=16_384, ge=0,
                                        description="bodies this large are also parsed in the worker thread")
    offload_queue: int = Field(default=64, ge=1, le=100_000,
                               description="jobs waiting for the worker thread (503 beyond)")
    gil_switch_interval_us: int = Field(
        default=100, ge=10, le=100_000,
        description="CPython's GIL switch interval (sys.setswitchinterval): how long the worker thread may keep the "
                    "event loop waiting for the GIL. 1 ms gave +18% texts/s on 32-text requests but let health "
                    "probes wait 0.86-1.49 s in 3 red-team runs of conns_512 (0.1 ms: 0.36-0.54 s); docs/tail.md")
    max_in_flight: int = Field(default=64, ge=1, le=100_000, description="POST requests in flight (503 beyond)")
    max_body_bytes_in_flight: int = Field(default=16 * 1_048_576, ge=1024,
                                          description="declared body bytes of POSTs in flight (503 beyond)")
    retry_after_s: int = Field(default=1, ge=0, le=3600, description="Retry-After of a 503 when shedding load")
    header_max_bytes: int = Field(default=32 * 1024, ge=1024, le=1_048_576,
                                  description="request line + headers (431 beyond)")
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600, description="time to send the request head (408)")
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600, description="time to send the body after the head")
    drain_idle_s: float = Field(default=1.0, ge=0, le=60,
                                description="on SIGTERM, idle connections stay open this long for requests on the way")
    # the models folder is untrusted input: caps checked before a file is read (slimtext/safefs.py)
    max_manifest_bytes: int = Field(default=1 << 20, ge=1024, description="manifest.json size cap")
    max_vocab_bytes: int = Field(default=64 << 20, ge=1024, description="vocab.json size cap")
    max_vocab_entries: int = Field(default=2_000_000, ge=2, description="vocabulary entries cap")
    max_model_bytes: int = Field(default=512 << 20, ge=1024, description="model.onnx size cap")
    # exposure (service/auth.py): keys are comma-separated, each at least 16 characters
    api_keys: SecretKeys = Field(default=(), repr=False, description="keys for inference and /models; empty: open")
    admin_keys: SecretKeys = Field(default=(), repr=False,
                                   description="keys for /metrics and /models details; empty: open")
    metrics_public: bool = Field(default=False, description="/metrics needs no key even when keys are set "
                                                            "(for a scraper on a private network)")
    enable_docs: bool = Field(default=False, description="serve /docs, /redoc and /openapi.json")
    enable_bench: bool = Field(default=False, description="serve the /bench/* benchmark routes")
    # several workers (service/metrics.py): set by `python -m service --workers N`
    metrics_dir: Path | None = Field(default=None, description="folder where workers share metric snapshots")
    metrics_flush_s: float = Field(default=1.0, gt=0, le=60, description="how often a worker writes its snapshot")

    @field_validator("api_keys", "admin_keys", mode="after")
    @classmethod
    def _keys_ok(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        _split_keys(list(v))  # also when given as a list in code
        return v

    @property
    def memory_budget_bytes(self) -> int | None:
        return None if self.memory_budget_mb is None else int(self.memory_budget_mb * (1 << 20))

    @property
    def file_limits(self) -> FileLimits:
        return FileLimits(manifest_bytes=self.max_manifest_bytes, vocab_bytes=self.max_vocab_bytes,
                          vocab_entries=self.max_vocab_entries, model_bytes=self.max_model_bytes)
    # many models per server (service/registry/)
    memory_budget_mb: float | None = Field(default=None, gt=0, le=1 << 30,
                                           description="load models on first use and evict the least recently used "
                                                       "unpinned one beyond this much model memory (unset: load all)")
    ort_cpu_arena: bool = Field(default=False, description="onnxruntime's per-session memory arena (off: less memory "
                                                           "per model at the same latency, docs/density.md)")
    pinned_models: NamesList = Field(default=(), description="models loaded at start-up and never evicted")
    grpc_port: int | None = Field(default=None, ge=1, le=65535,
                                  description="serve the Open Inference Protocol over gRPC on this port (off: unset)")
    grpc_host: str = Field(default="127.0.0.1", min_length=1, description="address the gRPC port binds to")
    grpc_max_streams: int = Field(default=16, ge=1, le=1024,
                                  description="concurrent gRPC calls per connection (HTTP/2 streams; beyond, they "
                                              "wait at the client): 500 calls of 1 MB on 8 connections peaked at "
                                              "258 MB RSS with 64, 174 MB with 16")

    @field_validator("models_dir")
    @classmethod
    def _models_dir_exists(cls, v: Path) -> Path:
        if not v.is_dir():
            raise ValueError(f"models folder {v} does not exist (set SLIMTEXT_MODELS_DIR)")
        return v
