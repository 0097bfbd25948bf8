"""The one tokenizer: used by training, export checks and the service alike.

Text -> tokens (regex word split, optional lower-casing, contractions split the PTB way
so that "doesn't" becomes "does n't" as in the SST/GloVe corpora) -> ids (PAD=0, OOV=1).
No torch here: the service imports this module.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

PAD, OOV = "<pad>", "<unk>"
PAD_ID, OOV_ID = 0, 1

# words with inner hyphens/apostrophes ("re-imagining", "n't"), a leading-apostrophe clitic ("'s"),
# or any single other non-space character (punctuation, emoji, control characters).
DEFAULT_PATTERN = r"\w+(?:[-']\w+)*|'\w+|[^\w\s]"
_CONTRACTION = re.compile(r"(\w)(n't|'(?:s|re|ve|ll|d|m))\b", re.IGNORECASE)


class TokenizerConfig(BaseModel):
    """Everything that decides which ids a text gets; saved in every model's manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lowercase: bool = True
    pattern: str = DEFAULT_PATTERN
    split_contractions: bool = True
    max_len: int = Field(default=100, ge=1)
    min_freq: int = Field(default=1, ge=1)
    max_vocab: int | None = Field(default=None, ge=3)


class Tokenizer:
    """Regex tokenizer plus a fixed vocabulary. Id 0 pads, id 1 is out-of-vocabulary."""

    def __init__(self, config: TokenizerConfig, itos: Sequence[str]):
        if len(itos) < 2 or itos[PAD_ID] != PAD or itos[OOV_ID] != OOV:
            raise ValueError(f"vocabulary must start with {PAD!r}, {OOV!r}")
        self.config = config
        self.itos = list(itos)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary has duplicate tokens")
        self._regex = re.compile(config.pattern)

    def __len__(self) -> int:
        return len(self.itos)

    # --- text -> tokens -> ids -------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        if self.config.lowercase:
            text = text.lower()
        if self.config.split_contractions and "'" in text:
            text = _CONTRACTION.sub(r"\1 \2", text)
        return self._regex.findall(text)

    def ids(self, text: str) -> list[int]:
        """The first max_len tokens' ids."""
        get = self.stoi.get
        return [get(t, OOV_ID) for t in self.first_tokens(text)]

    def first_tokens(self, text: str) -> list[str]:
        """The first max_len tokens. The regex stops after max_len matches, so a long text costs no more than
        its first max_len tokens (only the C-level lower-casing and contraction pass see it all)."""
        if self.config.lowercase:
            text = text.lower()
        if self.config.split_contractions and "'" in text:
            text = _CONTRACTION.sub(r"\1 \2", text)
        max_len = self.config.max_len
        if len(text) <= 4 * max_len:  # short (the usual case): findall is faster, and its cost is bounded too
            return self._regex.findall(text)[:max_len]
        return [m.group() for m in islice(self._regex.finditer(text), max_len)]

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Pad a batch to its longest text: ids (B, T) int64 and lengths (B,) int64.

        A text with no tokens gets length 0 (one PAD column keeps T >= 1); the models then
        see an all-zero sentence vector and predict from their biases: a defined answer.
        """
        rows = [self.ids(t) for t in texts]
        counts = [len(r) for r in rows]
        if len(rows) == 1 and counts[0]:  # the common single-text request: no padding to do
            return np.array(rows, dtype=np.int64), np.array(counts, dtype=np.int64)
        out = np.zeros((len(rows), max(1, max(counts, default=0))), dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out, np.array(counts, dtype=np.int64)

    # --- vocabulary ------------------------------------------------------------------------
    @classmethod
    def build(cls, config: TokenizerConfig, texts: Iterable[str], extra: Iterable[str] = ()) -> Tokenizer:
        """Vocabulary from training texts (frequency >= min_freq, most frequent first, capped
        at max_vocab), then `extra` words (e.g. frequent pretrained words) not yet in it."""
        probe = cls(config, [PAD, OOV])
        counts = Counter(tok for t in texts for tok in probe.tokenize(t))
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= config.min_freq]
        words = [w for w in dict.fromkeys([*words, *extra]) if w not in (PAD, OOV)]
        if config.max_vocab is not None:
            words = words[: config.max_vocab - 2]
        return cls(config, [PAD, OOV, *words])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"tokenizer": self.config.model_dump(), "itos": self.itos},
                                         ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        try:
            raw = Path(path).read_bytes()
        except OSError as e:
            raise ValueError(f"{path}: not a valid vocabulary file ({e})") from e
        return cls.loads(raw, path)

    @classmethod
    def loads(cls, raw: bytes, source: str | Path = "vocab.json", compact: bool = False) -> Tokenizer:
        """From the bytes of a vocabulary file (the service reads them through slimtext.safefs); `compact`:
        a CompactTokenizer (same ids, a fraction of the memory)."""
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("itos"), list):
                raise ValueError("expected an object with an 'itos' list")
            if not all(isinstance(w, str) for w in data["itos"]):
                raise ValueError("'itos' holds a non-string")
            return (CompactTokenizer if compact else cls)(TokenizerConfig.model_validate(data["tokenizer"]),
                                                          data["itos"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{source}: not a valid vocabulary file ({e})") from e


class CompactTokenizer(Tokenizer):
    """The same tokenizer with its vocabulary in numpy arrays instead of a dict of Python strings: the tokens'
    hashes sorted (int64) with their ids (int32), and the tokens as one UTF-8 blob plus offsets (for `itos`).
    SST-2's 14,752 words: about 0.5 MB instead of 1.8-2.0 MB. A batch's tokens are looked up in one vectorized
    binary search. A token is matched by its 64-bit hash (Python's SipHash): an unknown token is taken for a
    known one only if the two hashes collide, about 1e-15 per token for a 15k vocabulary; a collision between
    two vocabulary tokens is refused at load like a duplicate."""

    def __init__(self, config: TokenizerConfig, itos: Sequence[str]):
        if len(itos) < 2 or itos[PAD_ID] != PAD or itos[OOV_ID] != OOV:
            raise ValueError(f"vocabulary must start with {PAD!r}, {OOV!r}")
        self.config = config
        self._regex = re.compile(config.pattern)
        self._n = len(itos)
        hashes = np.fromiter(map(hash, itos), dtype=np.int64, count=self._n)
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        if bool(np.any(self._hashes[1:] == self._hashes[:-1])):
            raise ValueError("vocabulary has duplicate tokens")
        self._ids = order  # int64: the ids' dtype, so a lookup needs no conversion
        encoded = [w.encode("utf-8") for w in itos]
        self._blob = b"".join(encoded)
        self._offsets = np.zeros(self._n + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=self._offsets[1:])

    def __len__(self) -> int:
        return self._n

    @property
    def itos(self) -> list[str]:  # type: ignore[override]
        o = self._offsets.tolist()
        return [self._blob[o[i]: o[i + 1]].decode("utf-8") for i in range(self._n)]

    @property
    def stoi(self) -> dict[str, int]:  # type: ignore[override]
        return {w: i for i, w in enumerate(self.itos)}

    def _lookup(self, tokens: list[str]) -> np.ndarray:
        h = np.array([hash(t) for t in tokens], dtype=np.int64)
        pos = self._hashes.searchsorted(h)
        pos[pos == self._n] = 0  # past the last hash: certainly unknown (checked below)
        ids = self._ids[pos]
        ids[self._hashes[pos] != h] = OOV_ID
        return ids

    def ids(self, text: str) -> list[int]:
        return self._lookup(self.first_tokens(text)).tolist()

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = [self.first_tokens(t) for t in texts]
        if len(rows) == 1 and rows[0]:  # the common single-text request
            return self._lookup(rows[0])[None, :], np.array([len(rows[0])], dtype=np.int64)
        counts = np.array([len(r) for r in rows], dtype=np.int64)
        width = max(1, int(counts.max(initial=0)))
        out = np.zeros((len(rows), width), dtype=np.int64)
        flat = [tok for r in rows for tok in r]
        if flat:
            out[np.arange(width) < counts[:, None]] = self._lookup(flat)  # row by row, left to right
        return out, counts
