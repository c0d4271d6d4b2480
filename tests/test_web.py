"""The HTTP face of a real Exporter talking to a real simulator on loopback."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from genesys_cloud_simulator import SimulatedGenesysCloud
from prometheus_client.parser import text_string_to_metric_families

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.config import Settings
from genesys_sentiment_exporter.metrics import CONTENT_TYPE
from genesys_sentiment_exporter.web_config import load_web_config

SimFactory = Callable[..., Awaitable[SimulatedGenesysCloud]]
ExporterFactory = Callable[..., Awaitable[Exporter]]


@pytest.fixture
async def start_exporter() -> AsyncIterator[ExporterFactory]:
    started: list[Exporter] = []

    async def factory(sim: SimulatedGenesysCloud, **overrides: Any) -> Exporter:
        values: dict[str, Any] = {
            "api_base_url": sim.base_url,
            "login_base_url": sim.base_url,
            "client_id": "demo-client",
            "client_secret": "demo-secret",
            "web_listen_address": "127.0.0.1:0",
            "heartbeat_seconds": 10,
            "source": "analytics-websocket",
        }
        values.update(overrides)
        exporter = Exporter(Settings(**values))
        await exporter.start()
        started.append(exporter)
        return exporter

    yield factory
    for exporter in started:
        await exporter.stop()


def client(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=5.0, **kwargs)


async def wait_for_status(http: httpx.AsyncClient, url: str, status: int, timeout: float = 5.0) -> httpx.Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await http.get(url)
        if response.status_code == status or loop.time() > deadline:
            return response
        await asyncio.sleep(0.05)


async def wait_for_text(http: httpx.AsyncClient, url: str, needle: str, timeout: float = 5.0) -> httpx.Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await http.get(url)
        if needle in response.text or loop.time() > deadline:
            return response
        await asyncio.sleep(0.05)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if (k, v) != ("party", "customer")))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# -- endpoints ---------------------------------------------------------------------------------------


async def test_endpoints_readiness_follows_the_stream(start_sim: SimFactory, start_exporter: ExporterFactory) -> None:
    sim = await start_sim()
    exporter = await start_exporter(sim)
    base = exporter.web.url
    assert base.startswith("http://127.0.0.1:")
    assert not base.endswith(":0")
    async with client() as http:
        landing = await http.get(base + "/")
        assert landing.status_code == 200
        assert landing.headers["Content-Type"].startswith("text/html")
        assert 'href="/metrics"' in landing.text
        assert 'href="/-/healthy"' in landing.text and 'href="/-/ready"' in landing.text

        healthy = await http.get(base + "/-/healthy")
        assert healthy.status_code == 200

        ready = await wait_for_status(http, base + "/-/ready", 200)
        assert ready.status_code == 200, ready.text

        sim.publish(
            {
                "conversationId": "conv-secret-1",
                "agentId": "agent-1",
                "queueId": "q-1",
                "state": "connected",
                "sentiment": {"score": -0.5, "label": "negative"},
            }
        )
        metrics = await wait_for_text(http, base + "/metrics", 'agent_id="agent-1"')
        assert metrics.status_code == 200
        assert metrics.headers["Content-Type"] == CONTENT_TYPE
        assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        values = samples(metrics.text)
        assert values[("genesys_exporter_ready", ())] == 1.0
        assert values[("genesys_stream_connected", ())] == 1.0
        agent = (("agent_id", "agent-1"), ("queue_id", "q-1"))
        assert values[("genesys_agent_sentiment_rolling_average", agent)] == -0.5
        assert "conv-secret-1" not in metrics.text

        await sim.stop()
        not_ready = await wait_for_status(http, base + "/-/ready", 503)
        assert not_ready.status_code == 503
        assert not_ready.text.startswith("Not ready: ")
        assert "stream not connected" in not_ready.text
        assert (await http.get(base + "/-/healthy")).status_code == 200  # alive, just not ready
        after = samples((await http.get(base + "/metrics")).text)
        assert after[("genesys_exporter_ready", ())] == 0.0
        assert after[("genesys_stream_connected", ())] == 0.0


async def test_not_ready_before_a_token_is_obtained(start_sim: SimFactory, start_exporter: ExporterFactory) -> None:
    sim = await start_sim()
    sim.fail_token_requests(1000, status=503)
    exporter = await start_exporter(sim)
    async with client() as http:
        ready = await http.get(exporter.web.url + "/-/ready")
        assert ready.status_code == 503
        assert "no valid OAuth token" in ready.text
        assert "stream not connected" in ready.text
        ready = await wait_for_text(http, exporter.web.url + "/-/ready", "HTTP 503")
        assert ready.status_code == 503
        assert "HTTP 503" in ready.text  # once answered, the reason says what the login host said
        assert (await http.get(exporter.web.url + "/-/healthy")).status_code == 200
        metrics = samples((await http.get(exporter.metrics_url)).text)
        assert metrics[("genesys_exporter_ready", ())] == 0.0


async def test_rejected_client_is_not_ready(start_sim: SimFactory, start_exporter: ExporterFactory) -> None:
    sim = await start_sim()
    exporter = await start_exporter(sim, client_secret="wrong-secret")
    async with client() as http:
        ready = await wait_for_text(http, exporter.web.url + "/-/ready", "invalid_client")
        assert ready.status_code == 503
        assert "invalid_client" in ready.text
        assert "wrong-secret" not in ready.text


async def test_custom_telemetry_path(start_sim: SimFactory, start_exporter: ExporterFactory) -> None:
    sim = await start_sim()
    exporter = await start_exporter(sim, web_telemetry_path="/sentiment/metrics")
    base = exporter.web.url
    assert exporter.metrics_url == base + "/sentiment/metrics"
    async with client() as http:
        landing = await http.get(base + "/")
        assert 'href="/sentiment/metrics"' in landing.text
        assert 'href="/metrics"' not in landing.text
        metrics = await http.get(base + "/sentiment/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["Content-Type"] == CONTENT_TYPE
        assert "genesys_exporter_build_info" in metrics.text
        assert (await http.get(base + "/metrics")).status_code == 404


# -- web config file ----------------------------------------------------------------------------------


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


async def test_basic_auth(tmp_path: Path, start_sim: SimFactory, start_exporter: ExporterFactory) -> None:
    hashed = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=4)).decode()
    config = write_yaml(tmp_path / "web.yml", f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    sim = await start_sim()
    exporter = await start_exporter(sim, web_config_file=config)
    base = exporter.web.url
    async with client() as http:
        for path in ("/metrics", "/", "/-/healthy", "/-/ready"):
            refused = await http.get(base + path)
            assert refused.status_code == 401, path
            assert refused.headers["WWW-Authenticate"].startswith("Basic")
            assert "genesys_" not in refused.text
        assert (await http.get(base + "/metrics", auth=("prometheus", "wrong"))).status_code == 401
        assert (await http.get(base + "/metrics", auth=("someone", "s3cret-pass"))).status_code == 401
        assert (await http.get(base + "/metrics", headers={"Authorization": "Basic !!notbase64"})).status_code == 401
        assert (await http.get(base + "/metrics", headers={"Authorization": "Bearer x"})).status_code == 401
        ok = await http.get(base + "/metrics", auth=("prometheus", "s3cret-pass"))
        assert ok.status_code == 200
        assert ok.headers["Content-Type"] == CONTENT_TYPE
        assert "genesys_exporter_build_info" in ok.text
        # a second scrape (cached verification) still works, and the cache does not let a wrong password in
        assert (await http.get(base + "/metrics", auth=("prometheus", "s3cret-pass"))).status_code == 200
        assert (await http.get(base + "/metrics", auth=("prometheus", "s3cret-pas"))).status_code == 401


def openssl_cert(directory: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make a test certificate (cryptography is not installed)")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


async def test_tls(tmp_path: Path, start_sim: SimFactory, start_exporter: ExporterFactory) -> None:
    cert, key = openssl_cert(tmp_path, "exporter")
    # Relative paths are resolved against the web config file's directory.
    config = write_yaml(tmp_path / "web.yml", f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n")
    sim = await start_sim()
    exporter = await start_exporter(sim, web_config_file=config)
    assert exporter.web.url.startswith("https://127.0.0.1:")
    trusted = ssl.create_default_context(cafile=str(cert))
    async with client(verify=trusted) as http:
        response = await http.get(exporter.metrics_url)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE
        assert "genesys_exporter_build_info" in response.text
        assert (await http.get(exporter.web.url + "/-/healthy")).status_code == 200
    async with client() as http:  # the system trust store does not know our self-signed certificate
        with pytest.raises(httpx.ConnectError):
            await http.get(exporter.metrics_url)
    async with client() as http:  # plain http on the TLS port gets nowhere
        with pytest.raises(httpx.HTTPError):
            await http.get(exporter.metrics_url.replace("https://", "http://"))


async def test_mutual_tls(tmp_path: Path, start_sim: SimFactory, start_exporter: ExporterFactory) -> None:
    cert, key = openssl_cert(tmp_path, "exporter")
    client_cert, client_key = openssl_cert(tmp_path, "scraper")
    config = write_yaml(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_ca_file: {client_cert}\n",
    )
    sim = await start_sim()
    exporter = await start_exporter(sim, web_config_file=config)
    with_cert = ssl.create_default_context(cafile=str(cert))
    with_cert.load_cert_chain(str(client_cert), str(client_key))
    async with client(verify=with_cert) as http:
        assert (await http.get(exporter.metrics_url)).status_code == 200
    without_cert = ssl.create_default_context(cafile=str(cert))
    async with client(verify=without_cert) as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(exporter.metrics_url)


async def test_tls_and_basic_auth_together(
    tmp_path: Path, start_sim: SimFactory, start_exporter: ExporterFactory
) -> None:
    cert, key = openssl_cert(tmp_path, "exporter")
    hashed = bcrypt.hashpw(b"pw-123456", bcrypt.gensalt(rounds=4)).decode()
    config = write_yaml(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\nbasic_auth_users:\n  prom: '{hashed}'\n",
    )
    sim = await start_sim()
    exporter = await start_exporter(sim, web_config_file=config)
    async with client(verify=ssl.create_default_context(cafile=str(cert))) as http:
        assert (await http.get(exporter.metrics_url)).status_code == 401
        assert (await http.get(exporter.metrics_url, auth=("prom", "pw-123456"))).status_code == 200


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tls_server_config: {}\nhttp_server_config:\n  http2: true\n", "unsupported keys"),
        ("basic_auth: {user: x}\n", "unsupported keys"),
        ("basic_auth_users:\n  user: plaintext-password\n", "bcrypt"),
        ("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n", "cannot load TLS files"),
        ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS13\n", "tls_server_config"),
        ("- just\n- a list\n", "mapping"),
        ("basic_auth_users: [\n", "not valid YAML"),
    ],
)
def test_bad_web_config_is_a_value_error(tmp_path: Path, text: str, message: str) -> None:
    path = write_yaml(tmp_path / "web.yml", text)
    with pytest.raises(ValueError, match=message):
        load_web_config(path)


def test_exporter_refuses_unsupported_web_config_key(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "web.yml", "http_server_config:\n  headers: {}\n")
    settings = Settings(
        api_base_url="http://127.0.0.1:1",
        login_base_url="http://127.0.0.1:1",
        client_id="c",
        client_secret="s",
        web_listen_address="127.0.0.1:0",
        web_config_file=path,
        source="analytics-websocket",
    )
    with pytest.raises(ValueError, match="unsupported keys"):
        Exporter(settings)


def test_empty_web_config_means_plain_http_without_auth(tmp_path: Path) -> None:
    config = load_web_config(write_yaml(tmp_path / "web.yml", ""))
    assert config.tls is None
    assert config.basic_auth_users == {}


async def test_metrics_are_gzipped_when_prometheus_asks(start_sim: SimFactory, start_exporter: ExporterFactory) -> None:
    sim = await start_sim()
    exporter = await start_exporter(sim)
    async with client() as http:
        gzipped = await http.get(exporter.metrics_url, headers={"Accept-Encoding": "gzip"})
        plain = await http.get(exporter.metrics_url, headers={"Accept-Encoding": "identity"})
    assert gzipped.headers.get("Content-Encoding") == "gzip"
    assert "Content-Encoding" not in plain.headers
    assert gzipped.num_bytes_downloaded < len(gzipped.content)  # compressed on the wire (httpx decodes it)
    assert "genesys_exporter_build_info" in gzipped.text
    assert "genesys_exporter_build_info" in plain.text
