"""Run in a fresh process: RSS before and after loading one model folder, as JSON on stdout.

    python -m bench.rss_probe models/sst2-dan-lowrank

onnxruntime, numpy and slimtext are imported before the first reading, so the growth is what the
model itself costs (session, initializers, vocabulary), the same quantity the service reports.
The first load also pays onnxruntime's one-time set-up (environment, allocator), so a second copy
is loaded too: its growth (`marginal`) is what each further model of this kind costs.
"""

from __future__ import annotations

import gc
import json
import os
import sys

import numpy  # noqa: F401  (imported before measuring)
import onnxruntime  # noqa: F401

from slimtext.runtime import OnnxClassifier

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def main(folder: str) -> dict[str, int]:
    gc.collect()
    before = rss_bytes()
    first = OnnxClassifier(folder, intra_op_threads=1)
    gc.collect()
    after = rss_bytes()
    second = OnnxClassifier(folder, intra_op_threads=1)
    gc.collect()
    after_second = rss_bytes()
    assert first.labels and second.labels  # both sessions alive until measured
    return {"before": before, "after": after, "growth": after - before, "marginal": after_second - after}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
