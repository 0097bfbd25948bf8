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
        """The first max_len tokens' ids. The regex stops after max_len matches, so a long text costs
        no more than its first max_len tokens (only the C-level lower-casing and contraction pass see it all)."""
        get = self.stoi.get
        if self.config.lowercase:
            text = text.lower()
        if self.config.split_contractions and "'" in text:
            text = _CONTRACTION.sub(r"\1 \2", text)
        max_len = self.config.max_len
        if len(text) <= 4 * max_len:  # short (the usual case): findall is faster, and its cost is bounded too
            return [get(t, OOV_ID) for t in self._regex.findall(text)[:max_len]]
        return [get(m.group(), OOV_ID) for m in islice(self._regex.finditer(text), max_len)]

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
    def loads(cls, raw: bytes, source: str | Path = "vocab.json") -> Tokenizer:
        """From the bytes of a vocabulary file (the service reads them through slimtext.safefs)."""
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("itos"), list):
                raise ValueError("expected an object with an 'itos' list")
            if not all(isinstance(w, str) for w in data["itos"]):
                raise ValueError("'itos' holds a non-string")
            return cls(TokenizerConfig.model_validate(data["tokenizer"]), data["itos"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{source}: not a valid vocabulary file ({e})") from e
