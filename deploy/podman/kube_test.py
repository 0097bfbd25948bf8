"""`make kube-test`: deploy/k8s for real with `podman kube play`, then a rolling update under locust load.

Podman 4.3 plays the Deployment's pod template (replicas, securityContext, resources, env, emptyDir) but has
no controllers and no Service: no ClusterIP / kube-proxy, no ReplicaSet (no rolling update), no HPA, and it
ignores readiness and startup probes and preStop hooks (its livenessProbe becomes a HEALTHCHECK that runs
curl inside the container, scheduled by systemd timers). This script plays the missing parts from the
manifests' own fields, on loopback only:

- ReplicaSet: each replica is the Deployment's pod template played as a Pod (`podman kube play`), its
  container port published on 127.0.0.1:<free port> (podman publishes containerPort on the host anyway).
- kubelet: the startupProbe, then the readinessProbe and livenessProbe, by HTTP from the host with the
  manifest's path, port, period, timeout and failure threshold; on deletion the preStop exec hook
  (`podman exec`), then SIGTERM with the rest of terminationGracePeriodSeconds before SIGKILL.
- Service: a TCP proxy on 127.0.0.1 that spreads new connections round-robin over the ready, not
  terminating pods matching the selector (kube-proxy: per connection, no retries).
- Deployment controller: a rolling update to a new image tag with the manifest's maxSurge/maxUnavailable.

Checks: the pods get ready through their probes, /classify through the Service equals the pod's own answer,
the security settings hold in the container (uid, read-only root), and locust (locustfile.py, bounded run
time) through the Service fails no request while every pod is replaced. Exits 1 on any failure.

    PYTHONPATH=. .venv/bin/python deploy/podman/kube_test.py [--users 8] [--run-time 75] [--image IMG]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import csv
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import podmanlib as pm
import yaml

from bench.server import free_port

K8S = pm.ROOT / "deploy" / "k8s"
LOOPBACK = "127.0.0.1"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Pod:
    """One replica: the template played as a Pod, probed from the host like a kubelet."""

    def __init__(self, name: str, template: dict, image: str):
        self.name, self.image, self.port = name, image, free_port()
        self.spec = copy.deepcopy(template["spec"])
        self.container = self.spec["containers"][0]
        self.container["image"] = image
        for p in self.container.get("ports", []):  # published on loopback only, one free port per replica
            p.update(hostIP=LOOPBACK, hostPort=self.port)
        self.manifest = {"apiVersion": "v1", "kind": "Pod", "spec": self.spec,
                         "metadata": {"name": name, "labels": dict(template["metadata"]["labels"]),
                                      "annotations": dict(template["metadata"].get("annotations", {}))}}
        self.ready = self.started = self.terminating = False
        self.created = time.monotonic()
        self.ready_after: float | None = None
        self.liveness_failures = 0
        self._stop = threading.Event()

    @property
    def ctr(self) -> str:
        return f"{self.name}-{self.container['name']}"

    def play(self, folder: Path) -> None:
        path = folder / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(self.manifest, sort_keys=False))
        pm.podman("kube", "play", "--network", "podman", str(path), timeout=120)
        self.created = time.monotonic()
        threading.Thread(target=self._kubelet, daemon=True).start()

    def _probe(self, probe: dict) -> bool:
        get = probe["httpGet"]
        port = get["port"]
        if not isinstance(port, int):  # a named port: the container port of that name
            port = next(p["containerPort"] for p in self.container["ports"] if p.get("name") == port)
        assert port == self.container["ports"][0]["containerPort"], "only the published container port"
        try:
            r = httpx.get(f"http://{LOOPBACK}:{self.port}{get['path']}", timeout=probe.get("timeoutSeconds", 1))
            return 200 <= r.status_code < 400
        except httpx.HTTPError:
            return False

    def _kubelet(self) -> None:
        startup = self.container.get("startupProbe")
        if startup:
            for _ in range(startup.get("failureThreshold", 3)):
                if self._stop.wait(startup.get("periodSeconds", 10)) or self._probe(startup):
                    break
            else:
                log(f"{self.name}: startup probe failed {startup.get('failureThreshold', 3)} times")
                return
        self.started = True
        readiness, liveness = self.container.get("readinessProbe"), self.container.get("livenessProbe")
        failures, next_ready, next_live = 0, time.monotonic(), time.monotonic() + liveness["periodSeconds"]
        while not self._stop.is_set():
            now = time.monotonic()
            if readiness and now >= next_ready:
                ok = self._probe(readiness)
                failures = 0 if ok else failures + 1
                if ok and not self.ready:
                    self.ready_after = round(time.monotonic() - self.created, 1)
                    log(f"{self.name}: ready after {self.ready_after} s (startup + readiness probes)")
                self.ready = ok or (self.ready and failures < readiness.get("failureThreshold", 3))
                next_ready = now + readiness.get("periodSeconds", 10)
            if liveness and now >= next_live:
                self.liveness_failures = 0 if self._probe(liveness) else self.liveness_failures + 1
                next_live = now + liveness.get("periodSeconds", 10)
            self._stop.wait(0.2)

    def delete(self) -> float:
        """As a kubelet deletes a pod: preStop hook, then SIGTERM, SIGKILL after the grace period."""
        start = time.monotonic()
        self.terminating = True  # out of the Service's endpoints at once
        grace = self.spec.get("terminationGracePeriodSeconds", 30)
        hook = self.container.get("lifecycle", {}).get("preStop", {}).get("exec")
        if hook:
            pm.podman("exec", self.ctr, *hook["command"], check=False, timeout=grace)
        left = max(1, round(grace - (time.monotonic() - start)))
        # the app container first, the pod (its infra container and network) once it has exited, as a kubelet
        # tears down a sandbox: `podman pod stop` alone stops the infra container at the same time, and the
        # network can vanish under connections the app is still closing (they then hang, no FIN, no RST)
        pm.podman("stop", "-t", str(left), self.ctr, check=False, timeout=grace + 30)
        exit_code = pm.out("inspect", "--format", "{{.State.ExitCode}}", self.ctr)
        pm.podman("pod", "stop", "-t", "1", self.name, check=False, timeout=60)
        self._stop.set()
        pm.podman("pod", "rm", "-f", self.name, check=False)
        took = time.monotonic() - start
        log(f"{self.name}: deleted in {took:.1f} s (preStop {'+' if hook else 'none'}, exit code {exit_code})")
        return took


class Service:
    """kube-proxy for one Service: new connections round-robin over the ready endpoints, on loopback."""

    def __init__(self, pods: list[Pod], selector: dict[str, str]):
        self.pods, self.selector, self.port = pods, selector, free_port()
        self.connections: dict[str, int] = {}
        self.open: dict[str, int] = {}  # connections open now, per pod
        self.refused = 0
        self._rr = itertools.count()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)

    def endpoints(self) -> list[Pod]:
        return [p for p in list(self.pods) if p.ready and not p.terminating
                and all(p.manifest["metadata"]["labels"].get(k) == v for k, v in self.selector.items())]

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        eps = self.endpoints()
        if not eps:
            self.refused += 1
            writer.close()
            return
        pod = eps[next(self._rr) % len(eps)]
        self.connections[pod.name] = self.connections.get(pod.name, 0) + 1
        try:
            up_r, up_w = await asyncio.open_connection(LOOPBACK, pod.port)
        except OSError:
            self.refused += 1
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        self.open[pod.name] = self.open.get(pod.name, 0) + 1
        try:
            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        finally:
            self.open[pod.name] -= 1

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def wait_ready(pods: list[Pod], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.ready for p in pods):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout:.0f} s: {[p.name for p in pods if not p.ready]}")
        time.sleep(0.2)


def locust_stats(prefix: Path) -> dict[str, str]:
    with open(f"{prefix}_stats.csv") as f:
        return next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default=pm.IMAGE, help="the image `make image-test` built")
    ap.add_argument("--tag", default="localhost/slimtext:rollout-v2", help="the new tag rolled out")
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--run-time", type=int, default=75, help="locust's run time, s (the rollout starts at 10 s)")
    args = ap.parse_args()
    pm.require_podman()
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    service = yaml.safe_load((K8S / "service.yaml").read_text())
    template, replicas = deployment["spec"]["template"], deployment["spec"]["replicas"]
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    surge, unavailable = rolling["maxSurge"], rolling["maxUnavailable"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    name = deployment["metadata"]["name"]
    pm.podman("tag", args.image, args.tag)
    failures: list[str] = []
    pods: list[Pod] = []
    folder = Path(tempfile.mkdtemp(prefix="slimtext-kube-"))
    locust = None
    try:
        t0 = time.monotonic()
        pods += [Pod(f"{name}-v1-{i}", template, args.image) for i in range(replicas)]
        for p in pods:
            p.play(folder)
        wait_ready(pods)
        log(f"{replicas} pods of {args.image} ready in {time.monotonic() - t0:.1f} s")
        svc = Service(pods, service["spec"]["selector"])
        body = {"texts": ["a gorgeous , witty , seductive movie .", "an utterly unremarkable film ."]}
        via_svc = httpx.post(f"{svc.url}/classify", json=body, timeout=10)
        direct = httpx.post(f"http://{LOOPBACK}:{pods[0].port}/classify", json=body, timeout=10)
        if not (via_svc.status_code == direct.status_code == 200 and via_svc.json() == direct.json()):
            failures.append(f"/classify through the Service: {via_svc.status_code} {via_svc.text[:200]}")
        log(f"/classify through the Service ({svc.url}): {via_svc.status_code} {via_svc.text[:160]}")
        uid = pm.podman("exec", pods[0].ctr, "id", "-u", check=False).stdout.strip()
        ro = pm.podman("exec", pods[0].ctr, "sh", "-c", "touch /app/x 2>&1 || true", check=False).stdout.strip()
        tmp_ok = pm.podman("exec", pods[0].ctr, "sh", "-c", "touch /tmp/x && echo ok", check=False).stdout.strip()
        log(f"in the container: uid {uid}; write to /app: {ro or 'allowed'}; write to /tmp (emptyDir): {tmp_ok}")
        if uid != "10001" or "Read-only" not in ro or tmp_ok != "ok":
            failures.append("securityContext not applied")

        prefix = folder / "locust"
        env = {**os.environ, "SLIMTEXT_LOAD_MAX_P95_MS": "100000", "SLIMTEXT_LOAD_MAX_FAIL_RATIO": "0"}
        locust = subprocess.Popen(
            [str(Path(sys.executable).parent / "locust"), "-f", str(pm.ROOT / "locustfile.py"), "--host", svc.url,
             "--headless", "-u", str(args.users), "-r", str(args.users), "-t", f"{args.run_time}s",
             "--csv", str(prefix), "--only-summary", "--stop-timeout", "10"],
            cwd=pm.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(10)
        # the rolling update: at most `surge` extra pods, at most `unavailable` ready pods fewer than wanted
        t_roll = time.monotonic()
        old = list(pods)
        for i in range(replicas):
            assert surge >= 1 and unavailable == 0, "this emulation implements maxSurge >= 1, maxUnavailable 0"
            new = Pod(f"{name}-v2-{i}", template, args.tag)
            pods.append(new)
            new.play(folder)
            wait_ready([new])
            victim = old.pop(0)
            victim.delete()
            pods.remove(victim)
        roll_s = time.monotonic() - t_roll
        time.sleep(2)
        stale = {k: v for k, v in svc.open.items() if v and k not in {p.name for p in pods}}
        log(f"connections open through the Service: {svc.open}; to deleted pods: {stale or 'none'}")
        if stale:
            failures.append(f"connections left open to deleted pods: {stale}")
        log(f"rolling update to {args.tag} done in {roll_s:.1f} s; serving: "
            f"{[(p.name, p.image) for p in svc.endpoints()]}")
        out, _ = locust.communicate(timeout=args.run_time + 120)
        stats = locust_stats(prefix)
        n, fails = int(stats["Request Count"]), int(stats["Failure Count"])
        worst = float(stats["Max Response Time"])
        log(f"locust through the Service ({args.users} users, {args.run_time} s, rollout from 10 s): {n} requests, "
            f"{fails} failures, p50 {stats['50%']} ms, p95 {stats['95%']} ms, max {worst:.0f} ms, "
            f"{float(stats['Requests/s']):.0f} req/s; connections per pod {svc.connections}; refused {svc.refused}")
        (folder / "locust.log").write_text(out)
        with open(f"{prefix}_exceptions.csv") as f:
            exceptions = [(r["Count"], r["Message"]) for r in csv.DictReader(f)]
        if fails or exceptions or locust.returncode:
            notes = [line for line in out.splitlines() if "load test" in line or "Error" in line][-20:]
            failures.append(f"locust: {fails} failures, exceptions {exceptions}, exit code {locust.returncode}\n"
                            + "\n".join(notes))
        if n == 0:
            failures.append("locust sent no request")
        if any(p.image != args.tag for p in svc.endpoints()) or len(svc.endpoints()) != replicas:
            failures.append("the rollout did not end with every replica on the new tag")
    finally:
        if locust and locust.poll() is None:
            locust.kill()
            locust.wait(10)
        for p in pods:
            p._stop.set()
            pm.podman("pod", "rm", "-f", "-t", "0", p.name, check=False)
        pm.podman("rmi", args.tag, check=False)
    for f in failures:
        print(f"FAIL  {f}")
    print("kube-test:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
