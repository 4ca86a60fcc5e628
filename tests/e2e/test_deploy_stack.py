"""deploy/: the container image, the compose stack, the Kubernetes manifest and the nginx front end fit Sluice.

No Docker engine runs here, so the image and the stack are checked for what can be checked without one: every file
they mount exists, the configuration they run validates, and they use the ports, commands and health endpoints
Sluice really has. The nginx configuration is run for real in front of a real Sluice.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sluice.config_loading import load_settings
from tests.support.server import MASTER_KEY, SluiceServer, free_port, make_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
STACK_ENV = {
    "SLUICE_MASTER_KEY": "sk-deploy-test-master-key-0123456789",
    "SLUICE_JWT_SECRET": "deploy-test-jwt-secret-0123456789abcdef0123456789",
    "SLUICE_METRICS_TOKEN": "deploy-test-metrics-token-0123456789",
}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def _env_of(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment as compose would pass it, with the stack's required variables set."""
    env: dict[str, str] = {}
    for name, value in service["environment"].items():
        text = str(value)
        env[name] = re.sub(r"\$\{([A-Z_]+)(?::[-?][^}]*)?\}", lambda m: STACK_ENV.get(m.group(1), ""), text)
    return env


def test_dockerfile_installs_the_package_and_runs_sluice_unprivileged() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M)
    for sources in copied:
        for source in sources.split():
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which the repository does not have"
    extras = re.findall(r'pip install "/src\[([a-z,]+)\]"', text)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert extras and all(f"\n{extra} = [" in pyproject for extra in extras[0].split(","))
    assert re.search(r"^USER (?!root)\w+", text, flags=re.M)
    assert re.search(r"^EXPOSE 4000$", text, flags=re.M)
    assert 'ENTRYPOINT ["sluice"]' in text and 'CMD ["serve"]' in text
    assert "SLUICE_HOST=0.0.0.0" in text and "/health/live" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_stack_configuration_validates_with_the_compose_environment() -> None:
    service = _compose()["services"]["sluice"]
    env = _env_of(service)
    settings = load_settings(DEPLOY / "sluice.yaml", env=env)
    assert settings.resolved_database_url.startswith("postgresql+asyncpg://")
    assert settings.redis_url is not None and settings.limits.backend == "redis"
    assert settings.scheduling.backend == "rabbitmq" and settings.cache.backend == "redis"
    assert settings.server.host == "0.0.0.0" and settings.server.port == 4000
    assert settings.server.trusted_proxies == [env["SLUICE_TRUSTED_PROXY"]]
    # The production profile (issue 16.12): no API description, metrics behind the token Prometheus holds.
    assert settings.server.docs is False
    assert settings.observability.metrics == "token"
    token = settings.observability.metrics_token
    assert token is not None and token.get_secret_value() == STACK_ENV["SLUICE_METRICS_TOKEN"]


def test_compose_stack_mounts_existing_files_and_trusts_only_its_nginx() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "redis", "rabbitmq", "migrate", "sluice", "nginx", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which deploy/ does not have"
    assert services["sluice"]["deploy"]["replicas"] >= 2
    assert services["migrate"]["command"] == ["migrate"]
    waits = services["sluice"]["depends_on"]
    assert waits["migrate"]["condition"] == "service_completed_successfully"
    nginx_ip = services["nginx"]["networks"]["sluice"]["ipv4_address"]
    assert _env_of(services["sluice"])["SLUICE_TRUSTED_PROXY"] == f"{nginx_ip}/32"
    scrape = yaml.safe_load((DEPLOY / "prometheus-compose.yml").read_text())
    assert scrape["scrape_configs"][0]["dns_sd_configs"][0] == {"names": ["sluice"], "type": "A", "port": 4000}
    # Prometheus scrapes with the replicas' own metrics token, handed to it as a compose secret.
    assert compose["secrets"]["metrics_token"] == {"environment": "SLUICE_METRICS_TOKEN"}
    assert "metrics_token" in services["prometheus"]["secrets"]
    assert scrape["scrape_configs"][0]["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_kubernetes_manifest_probes_and_commands_exist(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "sluice.yaml").read_text()))
    kinds = {d["kind"]: d for d in documents}
    assert set(kinds) == {"Deployment", "Service", "PodDisruptionBudget"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (init,) = pod["initContainers"]
    assert init["args"] == ["migrate"] and container["args"] == ["serve"]
    with SluiceServer(make_settings(tmp_path)) as server:
        for probe in ("readinessProbe", "livenessProbe"):
            path = container[probe]["httpGet"]["path"]
            assert httpx.get(server.url + path, timeout=10).status_code == 200, path
    assert container["ports"][0]["containerPort"] == 4000
    names = {e["name"] for e in container["env"]}
    assert {
        "SLUICE_CONFIG",
        "SLUICE_MASTER_KEY",
        "SLUICE_JWT_SECRET",
        "SLUICE_DATABASE_URL",
        "SLUICE_METRICS_TOKEN",
    } <= names
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/data", "/tmp", "/etc/sluice"} <= mounts  # a read-only root file system still needs these
    assert pod["terminationGracePeriodSeconds"] > 30  # longer than Sluice's own 30 s drain


# --- nginx for real ------------------------------------------------------------------------------------------


def _nginx() -> str:
    binary = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)
    if binary is None:
        if os.environ.get("SLUICE_REQUIRE_SERVICES") == "1":
            pytest.fail("nginx is not installed and SLUICE_REQUIRE_SERVICES=1 (.ci/run installs nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return binary


@pytest.fixture
def nginx_in_front(tmp_path: Path) -> Iterator[tuple[str, SluiceServer]]:
    """deploy/nginx.conf, pointed at a real Sluice on loopback, listening on a free port."""
    binary = _nginx()
    mock = {"latency_ms": 0, "tokens_per_second": 40, "reply_tokens": 12}
    config = {
        "providers": [{"name": "slow", "kind": "mock", "mock": mock}],
        "models": [{"name": "slow-mock", "deployments": [{"provider": "slow"}]}],
        "server": {"trusted_proxies": ["127.0.0.1/32"]},
    }
    with SluiceServer(make_settings(tmp_path / "sluice", config)) as server:
        port = free_port()
        conf = (DEPLOY / "nginx.conf").read_text()
        conf = conf.replace("server sluice:4000", f"server 127.0.0.1:{server.port}")
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        work = tmp_path / "nginx"
        temps = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        for temp in temps:
            (work / temp).mkdir(parents=True)
        # Temporary files under the test's directory rather than nginx's compiled-in /var/lib/nginx.
        paths = "".join(f"    {t}_temp_path {work / t};\n" for t in temps)
        (work / "nginx.conf").write_text(conf.replace("http {", "http {\n" + paths, 1))
        directives = f"pid {work / 'nginx.pid'}; daemon off; master_process off;"
        argv = [
            binary,
            "-c",
            str(work / "nginx.conf"),
            "-p",
            str(work),
            "-e",
            str(work / "error.log"),
            "-g",
            directives,
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 10
            while True:
                try:
                    httpx.get(f"{url}/health/live", timeout=1)
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, (work / "error.log").read_text()
                    assert time.monotonic() < deadline, "nginx did not start within 10 s"
                    time.sleep(0.05)
            yield url, server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def test_nginx_forwards_streams_as_they_arrive_and_keeps_the_request_id(
    nginx_in_front: tuple[str, SluiceServer],
) -> None:
    url, _server = nginx_in_front
    body = {"model": "slow-mock", "stream": True, "messages": [{"role": "user", "content": "hello there"}]}
    headers = {"authorization": f"Bearer {MASTER_KEY}", "x-request-id": "deploy-stream-1"}
    arrivals: list[float] = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30) as reply:
        assert reply.status_code == 200
        assert reply.headers["x-request-id"] == "deploy-stream-1"
        for line in reply.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
    assert len(arrivals) >= 10
    # 12 tokens at 40 per second take about 0.3 s upstream; a buffering proxy would deliver them all at once.
    assert arrivals[-1] - arrivals[0] > 0.15


def test_nginx_passes_sluice_errors_and_generated_request_ids(nginx_in_front: tuple[str, SluiceServer]) -> None:
    url, _server = nginx_in_front
    reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "slow-mock"}, timeout=10)
    assert reply.status_code == 401 and reply.json()["error"]["type"]
    assert re.fullmatch(r"[0-9a-f]{32}", reply.headers["x-request-id"])  # nginx's $request_id, kept by Sluice
    too_big = b'{"model": "slow-mock", "messages": [], "pad": "' + b"x" * (21 * 1024 * 1024) + b'"}'
    reply = httpx.post(
        f"{url}/v1/chat/completions",
        content=too_big,
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
        timeout=30,
    )
    assert reply.status_code == 413  # from Sluice itself (nginx's own limit is above it), in OpenAI's shape
    assert reply.json()["error"]["code"]


def test_nginx_keeps_metrics_off_the_public_side(nginx_in_front: tuple[str, SluiceServer]) -> None:
    url, server = nginx_in_front
    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 200  # served on the inside
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 404
