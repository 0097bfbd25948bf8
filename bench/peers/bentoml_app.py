"""BentoML in its documented minimal form: a `@bentoml.service` class that loads the model in `__init__`
and one `@bentoml.api(batchable=True)` method, so BentoML's adaptive batching merges concurrent requests' lists
into one call. One worker by default; `SLIMTEXT_PEER_WORKERS=2` gives `@bentoml.service(workers=2)`.

    SLIMTEXT_PEER_MODEL=models/sst2-dan-lowrank bentoml serve bench.peers.bentoml_app:Slimtext --port 8001
    curl -XPOST localhost:8001/classify -H 'content-type: application/json' -d '{"texts": ["great fun"]}'
"""

from __future__ import annotations

import bentoml

from bench.peers.model import classify, load_model, workers

MAX_BATCH = 64  # the same knob for every peer that batches (bench/peers/run.py)


@bentoml.service(workers=workers())  # 1 unless $SLIMTEXT_PEER_WORKERS says otherwise
class Slimtext:
    def __init__(self) -> None:
        self.model = load_model()

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH)
    def classify(self, texts: list[str]) -> list[dict]:
        return classify(self.model, texts)
