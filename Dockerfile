# syntax=docker/dockerfile:1.7
# slimtext serving image: onnxruntime + FastAPI only, no torch.
#
#   make models && docker build -t slimtext .                    # models copied from ./models
#   docker run -p 8000:8000 -v "$PWD/models:/app/models:ro" slimtext   # or mounted over /app/models
#   docker build -t slimtext --target runtime-trained \
#       --build-context datasets=../shared/datasets .             # train + export inside the build (torch)
#   docker build -t slimtext-locust --target loadgen .            # locust image used by docker-compose
# any Debian-based Python 3.11 with `venv`; deploy/podman/base.sh makes one from Debian's packages
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: a virtual environment with the package and its `serve` extra only
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY slimtext/ slimtext/
COPY service/ service/
COPY training/ training/
RUN /opt/venv/bin/pip install --no-cache-dir '.[serve]'
# what serving never loads: uvicorn's optional extras for --reload, websockets and YAML log configs, pip
# and setuptools, the packages' test suites, onnxruntime's model-conversion tools (the quantizer runs at
# export time, in the torch stage); then an import check that nothing serving needs went with them
FROM builder AS serve-venv
RUN /opt/venv/bin/pip uninstall --yes --quiet watchfiles websockets pyyaml \
    && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
    && find /opt/venv -depth -type d -name tests -prune -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3*/site-packages/onnxruntime/transformers \
              /opt/venv/lib/python3*/site-packages/onnxruntime/tools \
              /opt/venv/lib/python3*/site-packages/onnxruntime/quantization \
              /opt/venv/lib/python3*/site-packages/numpy/f2py \
              /opt/venv/lib/python3*/site-packages/numpy/distutils \
    && /opt/venv/bin/python -c "import service.main, service.__main__, onnxruntime, numpy, uvloop, httptools"

# ---- train: optional, exports SST-2 models with torch (never part of the final image); 50-d GloVe and `online`:
# small and quick, no vectors download during the build (`make run`'s 300-d recipe: training/recipe.py)
FROM builder AS train
RUN /opt/venv/bin/pip install --no-cache-dir '.[train]'
RUN --mount=type=bind,from=datasets,target=/datasets \
    SLIMTEXT_DATASETS=/datasets /opt/venv/bin/python -m training run --vectors glove50 --out /models

# ---- loadgen: locust + the dataset reader, drives the proxy in docker-compose (profile `load`)
FROM builder AS loadgen
RUN /opt/venv/bin/pip install --no-cache-dir '.[load]'
COPY locustfile.py /app/locustfile.py
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH
ENTRYPOINT ["locust", "-f", "/app/locustfile.py"]

# ---- serve-base: the serving image without models (the two targets below add them)
FROM ${PYTHON_IMAGE} AS serve-base
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SLIMTEXT_MODELS_DIR=/app/models
RUN groupadd --system --gid 10001 slimtext \
    && useradd --system --uid 10001 --gid slimtext --no-create-home --shell /usr/sbin/nologin slimtext
COPY --from=serve-venv /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2).status == 200 else 1)"]
CMD ["python", "-m", "service", "--host", "0.0.0.0", "--port", "8000"]

# ---- runtime-trained: models trained and exported inside the build (`--target runtime-trained`)
FROM serve-base AS runtime-trained
COPY --from=train --chown=10001:10001 /models /app/models

# ---- runtime: the serving image with the folders exported by `make models` (default target)
FROM serve-base AS runtime
COPY --chown=10001:10001 models/ /app/models/
