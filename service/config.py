"""Typed settings from the environment (prefix SLIMTEXT_); a bad value stops start-up with a clear message."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from slimtext.manifest import NAME_PATTERN


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLIMTEXT_", extra="ignore", frozen=True)

    models_dir: Path = Field(default=Path("models"), description="folder of model folders to serve")
    default_model: str | None = Field(default=None, pattern=NAME_PATTERN,
                                      description="model used when a request names none; default: first lowrank")
    intra_op_threads: int = Field(default=1, ge=1, le=64, description="onnxruntime threads per session")
    strict: bool = Field(default=False, description="any bad model folder stops start-up")
    max_texts: int = Field(default=256, ge=1, le=100_000, description="texts per request")
    max_chars: int = Field(default=10_000, ge=1, description="characters per text")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="request body size")
    fast_path: bool = Field(default=True, description="serve POST /classify from a pure-ASGI path in front of FastAPI")
    batching: bool = Field(default=False, description="coalesce concurrent requests per model into one run")
    batch_max_texts: int = Field(default=64, ge=2, le=4096, description="texts per coalesced batch")
    batch_max_wait_us: int = Field(default=500, ge=0, le=1_000_000, description="longest wait for a batch to fill")
    offload_min_texts: int = Field(default=8, ge=1,
                                   description="requests with this many texts are tokenized and run in a worker thread")
    # reliability (service/admission.py, service/offload.py, service/protocol.py)
    offload_min_body_bytes: int = Field(default=16_384, ge=0,
                                        description="bodies this large are also parsed in the worker thread")
    offload_queue: int = Field(default=64, ge=1, le=100_000,
                               description="jobs waiting for the worker thread (503 beyond)")
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

    @field_validator("models_dir")
    @classmethod
    def _models_dir_exists(cls, v: Path) -> Path:
        if not v.is_dir():
            raise ValueError(f"models folder {v} does not exist (set SLIMTEXT_MODELS_DIR)")
        return v
