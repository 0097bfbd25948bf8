"""A text's probabilities do not depend on which other texts share its batch, for every served kind
(full, lowrank, int8) and with the service's micro-batching on or off: each text alone vs inside
mixed batches of other texts (shorter, longer, more padding), max |Δp| <= 1e-6."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from service.batching import MicroBatcher
from slimtext.runtime import OnnxClassifier

TOLERANCE = 1e-6


def _texts(sst2) -> list[str]:
    test = sst2["test"].texts
    return test[:48] + ["", "zzzz qqqq", "bad", " ".join(test[48:60])]  # empty, unknown, short, very long


def _alone(clf: OnnxClassifier, texts: list[str]) -> np.ndarray:
    return np.stack([clf.predict([t]).probs[0] for t in texts])


@pytest.mark.parametrize("kind", ["full", "lowrank", "int8"])
def test_each_text_alone_equals_it_inside_mixed_batches(quick_run, sst2, kind):
    clf = OnnxClassifier(quick_run[0] / f"sst2-dan-{kind}")
    texts = _texts(sst2)
    alone = _alone(clf, texts)
    rng = np.random.default_rng(0)
    worst = 0.0
    for size in (2, 7, 32, len(texts)):
        order = rng.permutation(len(texts))
        for start in range(0, len(texts), size):
            idx = order[start: start + size]
            probs = clf.predict([texts[i] for i in idx]).probs
            worst = max(worst, float(np.abs(probs - alone[idx]).max()))
    assert worst <= TOLERANCE, f"{kind}: max |Δp| {worst:.2e}"


@pytest.mark.parametrize("kind", ["full", "lowrank", "int8"])
def test_micro_batching_gives_each_request_its_solo_answer(quick_run, sst2, kind):
    """Concurrent single-text requests coalesced by the service's MicroBatcher into one onnxruntime run."""
    clf = OnnxClassifier(quick_run[0] / f"sst2-dan-{kind}")
    texts = _texts(sst2)
    alone = _alone(clf, texts)
    batches: list[int] = []

    async def all_at_once() -> list[np.ndarray]:
        batcher = MicroBatcher(clf.probabilities, max_texts=16, max_wait_s=0.05, on_batch=batches.append)
        encoded = [clf.tokenizer.encode_batch([t]) for t in texts]
        return await asyncio.gather(*(batcher.submit(ids, lengths) for ids, lengths in encoded))

    got = np.concatenate(asyncio.run(all_at_once()))
    assert max(batches) > 1  # requests really shared onnxruntime runs
    worst = float(np.abs(got - alone).max())
    assert worst <= TOLERANCE, f"{kind}: max |Δp| {worst:.2e}"


def test_the_check_catches_dynamic_activation_quantization(quick_run, sst2, tmp_path):
    """The int8 scheme served before (onnxruntime dynamic quantization, activation scales per batch)
    fails the same comparison: the tolerance is not vacuous."""
    from bench.int8 import quantize_dynamic_quint8, variant

    dynamic = variant(quick_run[0] / "sst2-dan-full", tmp_path / "dynamic", quantize_dynamic_quint8, None)
    texts = _texts(sst2)
    worst = float(np.abs(dynamic.predict(texts).probs - _alone(dynamic, texts)).max())
    assert worst > 100 * TOLERANCE
