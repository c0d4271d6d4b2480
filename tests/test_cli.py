"""The command line as a user meets it: subprocesses, exit codes, one-line configuration errors."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from genesys_sentiment_exporter import __version__

REPO = Path(__file__).resolve().parent.parent
SECRET = "cli-Secret-77x"
# Endpoints that are valid settings but never contacted by the failing cases below.
OFFLINE = [
    "--source",
    "analytics-websocket",
    "--api-base-url",
    "http://127.0.0.1:1",
    "--login-base-url",
    "http://127.0.0.1:1",
    "--client-id",
    "cid",
]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "genesys_sentiment_exporter", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_one_line_config_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("genesys-sentiment-exporter: invalid setting "), line
    for name in names:
        assert name in line, f"{name!r} not named in: {line}"
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    return line


@pytest.mark.parametrize(
    ("args", "env", "flag", "env_name", "why"),
    [
        (
            ["run", "--heartbeat-seconds", "5"],
            {},
            "--heartbeat-seconds",
            "GENESYS_EXPORTER_HEARTBEAT_SECONDS",
            "rate limit",
        ),
        (
            ["run"],
            {"GENESYS_EXPORTER_HEARTBEAT_SECONDS": "9"},
            "--heartbeat-seconds",
            "GENESYS_EXPORTER_HEARTBEAT_SECONDS",
            "at least 10",
        ),
        (
            ["check", "--heartbeat-seconds", "1"],
            {},
            "--heartbeat-seconds",
            "GENESYS_EXPORTER_HEARTBEAT_SECONDS",
            "rate limit",
        ),
        (
            ["demo", "--heartbeat-seconds", "3"],
            {},
            "--heartbeat-seconds",
            "GENESYS_EXPORTER_HEARTBEAT_SECONDS",
            "rate limit",
        ),
        (["run", "--region", "mars-1"], {}, "--region", "GENESYSCLOUD_REGION", "unknown region"),
        (["run"], {"GENESYSCLOUD_REGION": "mars-1"}, "--region", "GENESYSCLOUD_REGION", "unknown region"),
        (
            ["run", "--api-base-url", "http://example.com"],
            {},
            "--api-base-url",
            "GENESYS_EXPORTER_API_BASE_URL",
            "https",
        ),
        (
            ["run", "--login-base-url", "https://login.mypurecloud.ie/oauth"],
            {},
            "--login-base-url",
            "GENESYS_EXPORTER_LOGIN_BASE_URL",
            "base URL only",
        ),
        (
            ["run", "--web.listen-address", "nope"],
            {},
            "--web.listen-address",
            "GENESYS_EXPORTER_WEB_LISTEN_ADDRESS",
            "host:port",
        ),
        (
            ["run", "--web.telemetry-path", "/-/ready"],
            {},
            "--web.telemetry-path",
            "GENESYS_EXPORTER_WEB_TELEMETRY_PATH",
            "distinct",
        ),
        (["run", "--window-size", "0"], {}, "--window-size", "GENESYS_EXPORTER_WINDOW_SIZE", "greater than"),
        (["run", "--log.level", "loud"], {}, "--log.level", "GENESYS_EXPORTER_LOG_LEVEL", "'debug'"),
        (
            ["run", "--client-secret-file", "/nonexistent/secret"],
            {},
            "--client-secret-file",
            "GENESYS_EXPORTER_CLIENT_SECRET_FILE",
            "cannot read",
        ),
    ],
)
def test_bad_configuration_is_one_line_exit_2(
    args: list[str], env: dict[str, str], flag: str, env_name: str, why: str
) -> None:
    result = run_cli(*args, env={"GENESYSCLOUD_OAUTHCLIENT_SECRET": SECRET, **env})
    line = assert_one_line_config_error(result, flag, env_name)
    assert why in line
    assert SECRET not in result.stderr


@pytest.mark.parametrize(
    ("args", "flag", "env_name"),
    [
        (["run"], "--region", "GENESYSCLOUD_REGION"),
        (["run", "--region", "eu-west-1"], "--client-id", "GENESYSCLOUD_OAUTHCLIENT_ID"),
        (
            ["run", "--region", "eu-west-1", "--client-id", "cid"],
            "--client-secret-file",
            "GENESYSCLOUD_OAUTHCLIENT_SECRET",
        ),
        (["run", "--api-base-url", "https://gw.example.com"], "--login-base-url", "GENESYSCLOUD_REGION"),
        (["check", "--duration", "1"], "--region", "GENESYSCLOUD_REGION"),
    ],
)
def test_run_without_region_or_credentials(args: list[str], flag: str, env_name: str) -> None:
    assert_one_line_config_error(run_cli(*args), flag, env_name)


@pytest.mark.parametrize("command", ["run", "check"])
@pytest.mark.parametrize(
    "content", [None, "tls_server_config: {}\nbasic_auth: {}\n", "basic_auth_users:\n  u: plain\n"]
)
def test_bad_web_config_file_names_the_flag(tmp_path: Path, command: str, content: str | None) -> None:
    path = tmp_path / "web.yml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    extra = ["--duration", "1"] if command == "check" else []
    result = run_cli(
        command,
        *OFFLINE,
        "--web.listen-address",
        "127.0.0.1:0",
        "--web.config.file",
        str(path),
        *extra,
        env={"GENESYSCLOUD_OAUTHCLIENT_SECRET": SECRET},
    )
    assert_one_line_config_error(result, "--web.config.file", "GENESYS_EXPORTER_WEB_CONFIG_FILE")


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["simulate", "--listen-address", "0.0.0.0:0"], "--listen-address"),
        (["simulate", "--listen-address", "127.0.0.1:0", "--scenario", "bogus"], "--scenario"),
        (["demo", "--web.listen-address", "127.0.0.1:0", "--scenario", "bogus"], "--scenario"),
    ],
)
def test_bad_simulator_options_are_one_line_exit_2(args: list[str], name: str) -> None:
    result = run_cli(*args, timeout=10)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    assert result.returncode == 2
    # Nothing may announce a simulator that never started.
    assert "simulated Genesys Cloud on" not in result.stdout


def test_listen_address_in_use_is_reported_without_traceback() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(
            "run",
            *OFFLINE,
            "--web.listen-address",
            f"127.0.0.1:{port}",
            env={"GENESYSCLOUD_OAUTHCLIENT_SECRET": SECRET},
            timeout=15,
        )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert str(port) in result.stderr


@pytest.mark.parametrize("command", ["demo", "simulate"])
def test_demo_and_simulate_report_a_busy_port_in_one_line(command: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        flag = "--web.listen-address" if command == "demo" else "--listen-address"
        result = run_cli(command, flag, f"127.0.0.1:{port}", timeout=30)
    assert "Traceback" not in result.stderr, result.stderr
    # The demo's simulator may log its start and stop (log lines); the error itself is one line.
    errors = [line for line in result.stderr.splitlines() if not line.startswith("ts=")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"genesys-sentiment-exporter: cannot listen on 127.0.0.1:{port}: "), errors
    assert "in use" in errors[0]
    assert result.returncode == 1


@pytest.mark.parametrize("content", [None, "basic_auth_users:\n  u: plain\n"])
def test_demo_refuses_a_bad_web_config_file_in_one_line(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "web.yml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = run_cli("demo", "--web.listen-address", "127.0.0.1:0", "--web.config.file", str(path), timeout=30)
    assert_one_line_config_error(result, "--web.config.file", "GENESYS_EXPORTER_WEB_CONFIG_FILE")


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == __version__
    assert result.stderr == ""


def test_demo_help_lists_web_flags() -> None:
    result = run_cli("demo", "--help")
    assert result.returncode == 0
    for flag in ("--web.listen-address", "--web.telemetry-path", "--web.config.file", "--log.level", "--log.format"):
        assert flag in result.stdout
    # demo brings its own simulator: no credentials or endpoints to pass
    assert "--client-id" not in result.stdout
    assert "--api-base-url" not in result.stdout


def test_run_help_lists_every_setting() -> None:
    result = run_cli("run", "--help")
    assert result.returncode == 0
    for flag in (
        "--region",
        "--client-id",
        "--client-secret-file",
        "--api-base-url",
        "--login-base-url",
        "--queue-id",
        "--agent-id",
        "--heartbeat-seconds",
        "--web.listen-address",
        "--web.config.file",
    ):
        assert flag in result.stdout


def test_missing_subcommand_is_a_usage_error() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_simulate_answers_a_token_request() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "genesys_sentiment_exporter",
            "simulate",
            "--listen-address",
            f"127.0.0.1:{port}",
            "--scenario",
            "steady",
            "--log.level",
            "warn",
        ],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    good = "Basic " + base64.b64encode(b"demo-client:demo-secret").decode()
    bad = "Basic " + base64.b64encode(b"demo-client:wrong").decode()
    url = f"http://127.0.0.1:{port}/oauth/token"
    try:
        response = None
        deadline = time.monotonic() + 15
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert process.poll() is None, process.communicate()
                try:
                    response = client.post(
                        url, data={"grant_type": "client_credentials"}, headers={"Authorization": good}
                    )
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert response is not None, "simulator never answered"
            assert response.status_code == 200, response.text
            body = response.json()
            assert isinstance(body["access_token"], str) and body["access_token"]
            assert body["expires_in"] > 0
            assert body["token_type"].lower() == "bearer"
            refused = client.post(url, data={"grant_type": "client_credentials"}, headers={"Authorization": bad})
            assert refused.status_code == 401
            assert refused.json()["error"] == "invalid_client"
    finally:
        process.terminate()
        try:
            stdout, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr  # SIGTERM is a clean shutdown
    assert f"127.0.0.1:{port}" in stdout
    assert "Traceback" not in stderr


def test_simulate_flags_set_topics_that_require_the_current_user() -> None:
    from genesys_cloud_simulator.topics import requires_current_user

    from genesys_sentiment_exporter.cli import build_parser, simulator_config

    args = build_parser().parse_args(
        ["simulate", "--current-user-topic", "v2.users.*.conversations", "--current-user-topic", "v2.x"]
    )
    config = simulator_config(args)
    assert tuple(config.current_user_topics) == ("v2.users.*.conversations", "v2.x")
    assert requires_current_user(config, "v2.users.a1.conversations")
    assert not requires_current_user(config, "v2.routing.queues.q1.conversations")
    assert simulator_config(build_parser().parse_args(["simulate"])).current_user_topics == ()
    assert "missingPermissions" in run_cli("simulate", "--help").stdout.replace("\n", " ")
