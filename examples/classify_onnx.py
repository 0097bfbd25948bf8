"""Classify texts with nothing but onnxruntime: a slimtext string-input model (model.text.onnx, written by
`slimtext export --with-tokenizer`) holds the tokenizer, the vocabulary and the label names in its graph.

    python examples/classify_onnx.py models/sst2-dan-lowrank/model.text.onnx "a gorgeous , witty movie ." "dull"
    cat texts.txt | python examples/classify_onnx.py models/sst2-dan-lowrank/model.text.onnx

One line per text: the label, its probability, the number of tokens used, the text. No slimtext import, no
vocab.json, no manifest: the same file runs in onnxruntime for C, C++, C#, Java or JavaScript (Node) with the
same input (`text`, a 1-D string tensor) and outputs (`probabilities`, `labels`, `lengths`). Its one op outside
the ONNX standard, com.microsoft.Tokenizer, is built into onnxruntime's regular packages (no extension library).
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    session = ort.InferenceSession(argv[0], providers=["CPUExecutionProvider"])
    texts = argv[1:] or [line.rstrip("\n") for line in sys.stdin]
    if not texts:
        return 0
    probs, labels, lengths = session.run(["probabilities", "labels", "lengths"],
                                         {"text": np.array(texts, dtype=object)})
    for p, label, n, text in zip(probs, labels, lengths, texts, strict=True):
        print(f"{label}\t{p.max():.4f}\t{n}\t{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
