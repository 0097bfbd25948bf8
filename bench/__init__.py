"""Benchmarks and load tests: `python -m bench.compare`, `python -m bench.loadtest` (see README)."""
