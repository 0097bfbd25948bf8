"""LitServe in its documented minimal form (a LitAPI with setup / decode_request / predict / encode_response)
with its batching on: requests that arrive within `batch_timeout` of each other reach `predict` together,
one onnxruntime run for all their texts. One inference worker process by default;
`SLIMTEXT_PEER_WORKERS=2` gives `workers_per_device=2` (two inference processes behind the one API server).

    SLIMTEXT_PEER_MODEL=models/sst2-dan-lowrank python -m bench.peers.litserve_app --port 8001
"""

from __future__ import annotations

import argparse

import litserve as ls

from bench.peers.model import classify, load_model, split, workers

MAX_BATCH, BATCH_TIMEOUT_S = 64, 0.001  # the same knobs for every peer that batches (bench/peers/run.py)


class SlimtextAPI(ls.LitAPI):
    def setup(self, device):
        self.model = load_model()

    def decode_request(self, request):
        return request["texts"]

    def predict(self, batch):
        # with batching on, `batch` holds one list of texts per request: one model run for all of them
        flat = [text for texts in batch for text in texts]
        return split(classify(self.model, flat), [len(texts) for texts in batch])

    def encode_response(self, output):
        return {"predictions": output}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args()
    api = SlimtextAPI(max_batch_size=MAX_BATCH, batch_timeout=BATCH_TIMEOUT_S)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=workers())
    server.run(host=args.host, port=args.port, num_api_servers=1, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
