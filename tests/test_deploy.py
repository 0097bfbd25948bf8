"""Deployment files checked without a Docker engine: hadolint on the Dockerfile, docker-compose.yml and
the Kubernetes manifests parsed and checked against the app's real routes, and the image's exact
install + CMD replayed in a fresh virtual environment with only the `serve` extra."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from bench.server import free_port
from service.config import Settings
from service.main import create_app
from slimtext.runtime import OnnxClassifier
from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"


# ---------------------------------------------------------------- a small Dockerfile reader

@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, arguments)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def read_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    logical, buf = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        logical.append(buf + stripped)
        buf = ""
    stages: list[Stage] = []
    for instr in logical:
        keyword, _, rest = instr.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            stages.append(Stage(words[0], words[2] if len(words) > 2 and words[1].upper() == "AS" else None))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def stage(name: str) -> Stage:
    return next(s for s in read_dockerfile() if s.name == name)


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form CMD / HEALTHCHECK CMD."""
    return json.loads(args[args.index("["):])


def app_routes(tmp_path: Path) -> set[str]:
    """The paths of the app's OpenAPI schema (FastAPI's, under any ASGI wrapper that keeps it in `.app`)."""
    app = create_app(Settings(models_dir=tmp_path))
    while not hasattr(app, "openapi"):
        app = app.app
    return set(app.openapi()["paths"])


# ---------------------------------------------------------------- Dockerfile

def test_hadolint_reports_no_errors_or_warnings():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run([hadolint, "--format", "json", "--no-color", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    findings = json.loads(proc.stdout or "[]")
    serious = [f for f in findings if f["level"] in ("error", "warning")]
    assert not serious, serious
    assert proc.returncode == 0, findings


def test_final_stage_is_slim_nonroot_serve_only_with_healthcheck():
    stages = read_dockerfile()
    final = stages[-1]
    assert final.name == "runtime" and final.base == "serve-base"
    serving = stage("serve-base")  # everything but the models, shared with `runtime-trained`
    assert "slim" in serving.base or serving.base == "${PYTHON_IMAGE}"
    user = serving.args("USER")[-1].split(":")[0]
    assert user not in ("root", "0")
    # the venv it copies was built with the serve extra only; torch comes only with `train`
    assert any("--from=serve-venv" in a and "/opt/venv" in a for a in serving.args("COPY"))
    assert stage("serve-venv").base == "builder"
    builder_runs = " ".join(stage("builder").args("RUN") + stage("serve-venv").args("RUN"))
    assert "'.[serve]'" in builder_runs and "train" not in builder_runs and "torch" not in builder_runs
    for s in (serving, final):
        assert not any("pip" in a for a in s.args("RUN")), "the final stages install nothing themselves"
    health = serving.args("HEALTHCHECK")[-1]
    assert "/health/ready" in health and "urllib" in health and "curl" not in health
    assert exec_form(serving.args("CMD")[-1]) == [
        "python", "-m", "service", "--host", "0.0.0.0", "--port", "8000"]
    assert any("/app/models" in a for a in final.args("COPY")), "models are copied in (or mounted over)"
    trained = stage("runtime-trained")
    assert trained.base == "serve-base" and any("--from=train" in a for a in trained.args("COPY"))


def test_every_from_names_the_base_arg_or_an_earlier_stage():
    """buildah (podman build) cannot resolve a stage whose name comes from an ARG (`FROM ${MODELS_STAGE}`)."""
    seen: set[str] = set()
    for s in read_dockerfile():
        assert s.base == "${PYTHON_IMAGE}" or s.base in seen, s.base
        seen.add(s.name)


def test_podman_stand_ins_lint_clean_and_keep_the_upstream_tags(compose):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    for containerfile in sorted((ROOT / "deploy" / "podman").glob("*.Containerfile")):
        proc = subprocess.run([hadolint, "--format", "json", "--no-color", str(containerfile)],
                              capture_output=True, text=True, timeout=60)
        assert not [f for f in json.loads(proc.stdout or "[]") if f["level"] in ("error", "warning")], containerfile
    override = yaml.safe_load((ROOT / "deploy" / "podman" / "compose.override.yml").read_text())
    assert set(override["services"]) == {"proxy", "prometheus"}
    for name, svc in override["services"].items():
        assert set(svc) == {"image"} and svc["image"].startswith("localhost/"), name
    assert compose["services"]["proxy"]["image"].startswith("nginx:")
    assert compose["services"]["prometheus"]["image"].startswith("prom/prometheus:")


def test_dockerignore_keeps_the_build_context_small_but_complete():
    ignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "*"  # allow-list
    copied = {src.rstrip("/") for a in stage("builder").args("COPY") for src in a.split()[:-1]}
    for src in copied | {"models", "locustfile.py"}:
        assert f"!{src}" in ignore or f"!{src}/" in ignore, src


# ---------------------------------------------------------------- docker-compose

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_services_replicas_and_proxy(compose):
    services = compose["services"]
    assert {"api", "proxy", "prometheus", "locust"} <= set(services)
    api = services["api"]
    assert api["deploy"]["replicas"] >= 2
    assert api["deploy"]["mode"] == "replicated", "podman-compose scales only with the mode spelled out"
    assert "ports" not in api, "replicas sit behind the proxy: no fixed host port per replica"
    assert api["build"]["target"] == "runtime"
    proxy = services["proxy"]
    assert proxy["ports"], "the proxy is the one published port"
    conf_mount = next(v for v in proxy["volumes"] if v.endswith("/etc/nginx/nginx.conf:ro"))
    conf = (ROOT / conf_mount.split(":")[0]).read_text()
    assert "server api:8000" in conf and "proxy_pass http://api" in conf
    assert "resolver 127.0.0.11" in conf, "replicas are found through Docker's DNS"
    retry = next(ln for ln in conf.splitlines() if ln.strip().startswith("proxy_next_upstream "))
    assert "error" in retry and "non_idempotent" in retry, "POST /classify is retried on another replica"


def test_compose_healthchecks_and_ordering(compose):
    services = compose["services"]
    for name in ("api", "proxy", "prometheus"):
        hc = services[name]["healthcheck"]
        assert hc["test"][0] == "CMD" and hc["interval"] and hc["retries"] >= 1, name
    assert any("/health/ready" in part for part in services["api"]["healthcheck"]["test"])
    assert services["api"]["healthcheck"]["test"][1:] == exec_form(stage("serve-base").args("HEALTHCHECK")[-1])
    for name, upstream in (("proxy", "api"), ("prometheus", "api"), ("locust", "proxy")):
        assert services[name]["depends_on"][upstream]["condition"] == "service_healthy", name


def test_compose_locust_profile_drives_the_proxy(compose):
    locust = compose["services"]["locust"]
    assert locust["profiles"] == ["load"]
    assert locust["build"]["target"] == "loadgen"
    cmd = locust["command"]
    assert cmd[cmd.index("--host") + 1] == "http://proxy"
    assert "--headless" in cmd and "--run-time" in cmd, "bounded, no web UI"


def test_prometheus_scrapes_every_replica(compose, tmp_path):
    mount = next(v for v in compose["services"]["prometheus"]["volumes"] if "prometheus.yml" in v)
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "slimtext-api")
    assert job["metrics_path"] == "/metrics"
    sd = job["dns_sd_configs"][0]
    assert sd["names"] == ["api"] and sd["type"] == "A" and sd["port"] == 8000
    if "/metrics" not in app_routes(tmp_path):
        pytest.skip("the service has no /metrics route yet")
    assert "/metrics" in app_routes(tmp_path)


# ---------------------------------------------------------------- Kubernetes

@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    docs = [d for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return {d["kind"]: d for d in docs}


def test_k8s_manifests_parse_and_fit_together(manifests):
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Kustomization"} <= set(manifests)
    dep, svc, hpa = manifests["Deployment"], manifests["Service"], manifests["HorizontalPodAutoscaler"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    container = dep["spec"]["template"]["spec"]["containers"][0]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert svc["spec"]["ports"][0]["targetPort"] in port_names
    cmd = exec_form(stage("serve-base").args("CMD")[-1])
    assert port_names["http"] == int(cmd[cmd.index("--port") + 1])
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": dep["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert container["resources"]["requests"]["cpu"], "the HPA's CPU target needs a request"
    kustomize = set(manifests["Kustomization"]["resources"])
    assert kustomize == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_k8s_probes_point_at_real_routes(manifests, tmp_path):
    container = manifests["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    routes = app_routes(tmp_path)
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in routes, probe


def test_k8s_pod_drains_before_it_is_killed(manifests):
    """preStop sleep (endpoints removed first), then SIGTERM: the drain must end before the kill."""
    from service.__main__ import DEFAULTS

    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and int(pre_stop[1]) >= 3
    drain = int(DEFAULTS[DEFAULTS.index("--timeout-graceful-shutdown") + 1])
    assert int(pre_stop[1]) + drain < pod["terminationGracePeriodSeconds"]


def test_k8s_rollout_fields_the_kube_test_plays(manifests):
    """deploy/podman/kube_test.py plays these: a surge rollout that never drops below the wanted replicas."""
    dep = manifests["Deployment"]
    rolling = dep["spec"]["strategy"]["rollingUpdate"]
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    assert rolling["maxSurge"] >= 1 and rolling["maxUnavailable"] == 0
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
    assert all("httpGet" in container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe"))


# ---------------------------------------------------------------- KServe

KSERVE = ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
KSERVE_SCHEMA = ROOT / "tests" / "data" / "kserve_isvc_v1beta1_subset.yaml"


def _strict(schema):
    """The CRD schema with unknown fields rejected (kubectl --validate=strict; a CRD would prune them)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    return [_strict(v) for v in schema] if isinstance(schema, list) else schema


@pytest.fixture(scope="module")
def isvc_validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = _strict(yaml.safe_load(KSERVE_SCHEMA.read_text())["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def test_kserve_inferenceservice_fits_the_crd_schema(isvc_validator):
    isvc = yaml.safe_load(KSERVE.read_text())
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert [e.message for e in isvc_validator.iter_errors(isvc)] == []
    # the check bites: a misspelt field, a wrong type and a missing required field are each reported
    bad = yaml.safe_load(KSERVE.read_text())
    bad["spec"]["predictor"]["containers"][0]["readinesProbe"] = bad["spec"]["predictor"]["containers"][0].pop(
        "readinessProbe")
    bad["spec"]["predictor"]["minReplicas"] = "2"
    del bad["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"]
    errors = " | ".join(e.message for e in isvc_validator.iter_errors(bad))
    assert "readinesProbe" in errors and "'2' is not of type 'integer'" in errors and "containerPort" in errors


def test_kserve_custom_predictor_speaks_v2_on_real_routes(isvc_validator, manifests, tmp_path):
    predictor = yaml.safe_load(KSERVE.read_text())["spec"]["predictor"]
    container, = predictor["containers"]
    assert container["name"] == "kserve-container"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PROTOCOL"] == "v2"  # how KServe reads a custom predictor's protocol (v1 when absent)
    dep = manifests["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == dep["image"]
    assert env.items() >= {e["name"]: e["value"] for e in dep["env"]}.items()
    cmd = exec_form(stage("serve-base").args("CMD")[-1])
    assert container["ports"][0]["containerPort"] == int(cmd[cmd.index("--port") + 1])
    routes = app_routes(tmp_path)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in routes and container[probe]["httpGet"]["path"].startswith("/v2/")
        assert container[probe]["httpGet"]["port"] == container["ports"][0]["containerPort"]
    assert {"/v2/models/{name}/infer", "/v2/models/{name}/ready", "/v2/health/ready"} <= routes
    mounts = {m["name"] for m in container["volumeMounts"]}
    assert mounts == {v["name"] for v in predictor["volumes"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] and container["securityContext"]["runAsNonRoot"]


# ---------------------------------------------------------------- the image, replayed in a fresh venv

def _image_install_spec() -> str:
    """The extra the builder stage installs, e.g. '.[serve]'."""
    run = next(a for a in stage("builder").args("RUN") if "pip install" in a)
    return next(w for w in shlex.split(run) if w.startswith(".["))


def _copy_build_context(dest: Path) -> Path:
    """What the builder stage COPYs, placed as it places it."""
    dest.mkdir()
    for args in stage("builder").args("COPY"):
        *sources, _target = args.split()
        for src in sources:
            path = ROOT / src.rstrip("/")
            if path.is_dir():
                shutil.copytree(path, dest / path.name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, dest / path.name)
    return dest


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {proc.stdout.read()}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server not ready")


def test_image_cmd_serves_from_fresh_serve_only_venv(quick_run, tmp_path):
    models_dir = quick_run[0]
    src = _copy_build_context(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # as ENV PATH=/opt/venv/bin:$PATH does
    spec = f"{src}{_image_install_spec()[1:]}"  # '.[serve]' from the copied context
    pip = subprocess.run([str(bin_dir / "pip"), "install", "--quiet", spec], env=env, capture_output=True,
                         text=True, timeout=600)  # pip's cache is reused across runs
    assert pip.returncode == 0, pip.stderr[-3000:]

    python = str(bin_dir / "python")
    no_torch = subprocess.run([python, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    installed = subprocess.run([python, "-m", "pip", "list", "--format", "json"], env=env, capture_output=True,
                               text=True, check=True).stdout
    assert "torch" not in {p["name"].lower() for p in json.loads(installed)}
    # the serve-venv stage's trim (uvicorn's optional extras, pip, test suites) and its import check,
    # replayed on this venv: the server below runs from what the image keeps
    for run in stage("serve-venv").args("RUN"):
        trim = subprocess.run(["sh", "-c", run.replace("/opt/venv", str(venv))], env=env, capture_output=True,
                              text=True, timeout=300)
        assert trim.returncode == 0, trim.stderr[-3000:]
    assert not (bin_dir / "pip").exists()

    # the image's CMD, bound to loopback on a free port, run from an empty folder like /app
    cmd = exec_form(stage("serve-base").args("CMD")[-1])
    port = free_port()
    cmd[cmd.index("--host") + 1], cmd[cmd.index("--port") + 1] = "127.0.0.1", str(port)
    workdir = tmp_path / "app"
    workdir.mkdir()
    url = f"http://127.0.0.1:{port}"
    health = exec_form(stage("serve-base").args("HEALTHCHECK")[-1])
    health = [part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in health]
    server_env = {**env, "SLIMTEXT_MODELS_DIR": str(models_dir)}
    assert subprocess.run(health, env=env, cwd=workdir, capture_output=True, timeout=30).returncode != 0, \
        "the HEALTHCHECK must fail while nothing listens"
    proc = subprocess.Popen(cmd, cwd=workdir, env=server_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        _wait_ready(url, proc)
        assert subprocess.run(health, env=env, cwd=workdir, timeout=30).returncode == 0
        texts = ["a gorgeous , witty , seductive movie .", "the plot is nowhere near as clever as it thinks"]
        for model in ("sst2-dan-full", "sst2-dan-lowrank", "sst2-dan-int8"):
            r = httpx.post(f"{url}/classify", json={"texts": texts, "model": model}, timeout=10)
            assert r.status_code == 200, r.text
            got = np.array([[p["probabilities"][lab] for lab in ("negative", "positive")]
                            for p in r.json()["predictions"]])
            local = OnnxClassifier(models_dir / model)
            want = local.predict(texts).probs[:, [local.labels.index("negative"), local.labels.index("positive")]]
            np.testing.assert_allclose(got, want, atol=1e-6)
        proc.terminate()  # what `docker stop` sends: a graceful shutdown ends with status 0
        assert proc.wait(timeout=30) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the server ran from the fresh venv's site-packages, not from this checkout
    where = subprocess.run([python, "-c", "import service; print(service.__file__)"], env=env, cwd=workdir,
                           capture_output=True, text=True, check=True).stdout
    assert str(venv) in where
