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
    offload_min_texts: int = Field(default=128, ge=1, description="requests this large run in a worker thread")
    grpc_port: int | None = Field(default=None, ge=1, le=65535,
                                  description="serve the Open Inference Protocol over gRPC on this port (off: unset)")
    grpc_host: str = Field(default="127.0.0.1", min_length=1, description="address the gRPC port binds to")

    @field_validator("models_dir")
    @classmethod
    def _models_dir_exists(cls, v: Path) -> Path:
        if not v.is_dir():
            raise ValueError(f"models folder {v} does not exist (set SLIMTEXT_MODELS_DIR)")
        return v
