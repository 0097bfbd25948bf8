"""Load test for the slimtext service: real SST-2 test sentences sent to every served model.

    locust -f locustfile.py --host http://127.0.0.1:8000 --headless -u 16 -r 8 -t 30s

Each user sends single-text requests (weight 4) and batched requests (weight 1) to a model chosen
by weight; every request is named "<model> single" or "<model> batch<N>", so the CSV/HTML reports
have one row per model and shape. When locust quits, the run fails (exit code 1) if the failure
ratio is above SLIMTEXT_LOAD_MAX_FAIL_RATIO or the overall p95 is above SLIMTEXT_LOAD_MAX_P95_MS.

Environment:
    SLIMTEXT_LOAD_MODELS          "name:weight,name:weight"; default: every model of GET /models,
                                  weighted by kind (lowrank 3, int8 2, full 1)
    SLIMTEXT_LOAD_BATCH           texts per batched request (default 32)
    SLIMTEXT_LOAD_MAX_P95_MS      p95 threshold over all requests, ms (default 250)
    SLIMTEXT_LOAD_MAX_FAIL_RATIO  allowed failure ratio (default 0)
    SLIMTEXT_DATASETS             dataset root (see slimtext.data.datasets_root); sentences: sst2 test
"""

from __future__ import annotations

import json
import logging
import os
import random
import urllib.request
from functools import cache

from locust import FastHttpUser, events, task
from locust.runners import WorkerRunner

from slimtext.data import datasets_root, read_examples, split_path

KIND_WEIGHTS = {"lowrank": 3.0, "int8": 2.0, "full": 1.0}
BATCH = int(os.environ.get("SLIMTEXT_LOAD_BATCH", "32"))
MAX_P95_MS = float(os.environ.get("SLIMTEXT_LOAD_MAX_P95_MS", "250"))
MAX_FAIL_RATIO = float(os.environ.get("SLIMTEXT_LOAD_MAX_FAIL_RATIO", "0"))
DATASET = os.environ.get("SLIMTEXT_LOAD_DATASET", "sst2")

log = logging.getLogger("slimtext.locust")


@cache
def sentences() -> tuple[str, ...]:
    texts = read_examples(split_path(datasets_root() / DATASET, "test")).texts
    if not texts:
        raise RuntimeError(f"{DATASET} test split has no sentences")
    return tuple(texts)


def parse_weights(spec: str) -> dict[str, float]:
    """'a:3,b' -> {'a': 3.0, 'b': 1.0}"""
    weights = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, weight = item.partition(":")
        weights[name.strip()] = float(weight) if weight else 1.0
    if not weights or any(w <= 0 for w in weights.values()):
        raise ValueError(f"SLIMTEXT_LOAD_MODELS={spec!r}: give name:weight pairs with weights > 0")
    return weights


@cache
def model_weights(host: str) -> dict[str, float]:
    spec = os.environ.get("SLIMTEXT_LOAD_MODELS", "")
    if spec:
        return parse_weights(spec)
    with urllib.request.urlopen(f"{host.rstrip('/')}/models", timeout=10) as r:
        served = json.load(r)["models"]
    return {m["manifest"]["name"]: KIND_WEIGHTS.get(m["manifest"]["kind"], 1.0) for m in served}


class ClassifyUser(FastHttpUser):
    """A client of POST /classify; no think time, so the user count sets the concurrency."""

    def on_start(self) -> None:
        weights = model_weights(self.host)
        self.models, self.weights = list(weights), list(weights.values())
        self.texts = sentences()

    def _post(self, texts: list[str], shape: str) -> None:
        model = random.choices(self.models, self.weights)[0]
        with self.client.post("/classify", json={"texts": texts, "model": model}, name=f"{model} {shape}",
                              catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return
            body = resp.json()
            if body.get("model") != model or len(body.get("predictions", ())) != len(texts):
                resp.failure(f"wrong answer: model {body.get('model')!r}, "
                             f"{len(body.get('predictions', ()))} predictions for {len(texts)} texts")

    @task(4)
    def single(self) -> None:
        self._post([random.choice(self.texts)], "single")

    @task(1)
    def batch(self) -> None:
        self._post(random.sample(self.texts, min(BATCH, len(self.texts))), f"batch{BATCH}")


def threshold_problems(num_requests: int, fail_ratio: float, p95_ms: float | None) -> list[str]:
    if num_requests == 0:
        return ["no requests were made"]
    problems = []
    if fail_ratio > MAX_FAIL_RATIO:
        problems.append(f"failure ratio {fail_ratio:.4f} > {MAX_FAIL_RATIO}")
    if p95_ms is not None and p95_ms > MAX_P95_MS:
        problems.append(f"p95 {p95_ms:.0f} ms > {MAX_P95_MS:g} ms")
    return problems


@events.quitting.add_listener
def check_thresholds(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master holds the aggregated stats
    total = environment.stats.total
    p95 = total.get_response_time_percentile(0.95) if total.num_requests else None
    problems = threshold_problems(total.num_requests, total.fail_ratio, p95)
    if problems:
        log.error("load test FAILED: %s", "; ".join(problems))
        environment.process_exit_code = 1
    else:
        log.info("load test passed: %d requests, failure ratio %.4f, p95 %s ms (limit %g ms)",
                 total.num_requests, total.fail_ratio, p95, MAX_P95_MS)
