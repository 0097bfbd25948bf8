"""What the core answers, independent of any transport: typed results and typed errors.

The classifier core (service/classify.py) and the model registry (service/registry/) raise only these errors;
each transport renders them with its own table (service/errors.py for HTTP and /v2 REST,
service/grpc_server.py for gRPC). `code` is the machine-readable name every transport sends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError


class DomainError(Exception):
    """A request the core cannot answer, and why (`message` is safe to show a client)."""

    code = "error"

    def __init__(self, message: str, details: list | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.details = message, details
        if code is not None:
            self.code = code


class BadInput(DomainError):
    """The request itself is wrong: malformed, of the wrong shape, or over a size limit."""

    code = "invalid_request"


    @classmethod
    def from_validation(cls, error: ValidationError) -> BadInput:
        """pydantic's errors as one BadInput: their count, and the first MAX_ERROR_DETAILS without the input."""
        return cls(validation_message(error.error_count()),
                   validation_details(error.errors(include_input=False, include_url=False)))


class Malformed(BadInput):
    """The bytes do not parse: not JSON, not UTF-8, a broken binary tensor."""


class Unsupported(BadInput):
    """A declared content type the transport does not read."""

    code = "unsupported_media_type"


class TooLarge(BadInput):
    """Over a size limit: the body, the number of texts, a text's characters."""

    code = "too_large"


class UnknownModel(DomainError):
    """No model (or no version of it) by that name."""

    code = "unknown_model"


class NoDefaultModel(DomainError):
    """The request names no model and none is the default."""

    code = "no_default_model"


class ModelUnavailable(DomainError):
    """The model exists but cannot serve now: unloaded, failed to load, or the server is still starting."""

    code = "model_unavailable"


class Overloaded(DomainError):
    """The server is at a configured capacity (worker queue, in-flight slots); retry later."""

    code = "overloaded"


class Conflict(DomainError):
    """The operation contradicts the configuration (unloading the default model)."""

    code = "conflict"


class LoadFailed(DomainError):
    """A model folder named by an operator failed to load (what was loaded keeps serving)."""

    code = "load_failed"


MAX_ERROR_DETAILS = 10  # an error body lists at most this many problems (a 1 MiB body can hold 500k of them)


def validation_details(errors: list[dict]) -> list[dict]:
    """The first MAX_ERROR_DETAILS of pydantic's errors, without the echoed input (which may be megabytes)."""
    return [{"loc": [str(p)[:64] if isinstance(p, str) else p for p in e.get("loc", ())][:8],
             "msg": str(e.get("msg", ""))[:200], "type": str(e.get("type", ""))[:64]}
            for e in errors[:MAX_ERROR_DETAILS]]


def validation_message(count: int) -> str:
    shown = f"; the first {MAX_ERROR_DETAILS} in details" if count > MAX_ERROR_DETAILS else ""
    return f"request does not match the schema ({count} error{'s' if count != 1 else ''}{shown})"


def too_many_texts(count: int, limit: int, at_least: bool = False) -> TooLarge:
    """Over max_texts: the one message, whichever transport counted the texts."""
    return TooLarge(f"{'at least ' if at_least else ''}{count} texts; the limit is max_texts={limit}",
                    code="too_many_texts")


@dataclass(frozen=True, eq=False)
class Timing:
    """Seconds spent on one request's stages (Server-Timing, metrics)."""

    load: float  # waiting for the model's first load (0 when it was loaded)
    tokenize: float
    inference: float
    total: float


@dataclass(frozen=True, eq=False)
class Classification:
    """The core's answer for N texts."""

    model: str
    version: str
    labels: tuple[str, ...]
    probabilities: np.ndarray  # (N, C) float32, rows sum to 1
    n_tokens: np.ndarray  # (N,) tokens per text after truncation
    timing: Timing

    @property
    def best(self) -> np.ndarray:
        return self.probabilities.argmax(1)  # (N,)
