"""Ray Serve in its documented minimal form: one deployment (one replica; `SLIMTEXT_PEER_WORKERS=2` gives
`num_replicas=2`) whose `__call__` takes the Starlette request, with `@serve.batch` on so concurrent requests share
one model call.

    SLIMTEXT_PEER_MODEL=models/sst2-dan-lowrank python -m bench.peers.ray_app --port 8001

(`serve run` would do the same; this launcher only pins the HTTP host and port and keeps Ray to the
machine's CPUs without its dashboard.)
"""

from __future__ import annotations

import argparse
import signal
import threading

from ray import serve
from starlette.requests import Request

from bench.peers.model import classify, load_model, split, workers

MAX_BATCH, BATCH_TIMEOUT_S = 64, 0.001  # the same knobs for every peer that batches (bench/peers/run.py)


@serve.deployment(num_replicas=workers())  # 1 unless $SLIMTEXT_PEER_WORKERS says otherwise
class Slimtext:
    def __init__(self) -> None:
        self.model = load_model()

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_TIMEOUT_S)
    async def classify_batch(self, batch: list[list[str]]) -> list[list[dict]]:
        flat = [text for texts in batch for text in texts]
        return split(classify(self.model, flat), [len(texts) for texts in batch])

    async def __call__(self, request: Request) -> dict:
        body = await request.json()
        return {"predictions": await self.classify_batch(body["texts"])}


app = Slimtext.bind()


def main() -> None:
    import ray

    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args()
    ray.init(include_dashboard=False, configure_logging=False)
    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(app, route_prefix="/classify")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
