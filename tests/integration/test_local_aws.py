"""The local-aws backend's own machinery: the loopback-only jail, finding the tools, failed starts.

These need no LocalStack and no Java: the jail is tested with a small Python server that binds every
interface, exactly as DynamoDB Local does, and failed starts with stand-in servers. The real servers
are exercised by the e2e scenarios on this backend (tests/e2e/test_scenarios.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_aggregator.sandbox.emulator import EmulatorUnavailableError, read_port_line
from data_aggregator.sandbox.local_aws import BackendStartError, LocalAws, LocalAwsTools

# Binds 0.0.0.0 (every interface, like DynamoDB Local) and answers every GET with its own pid.
EVERY_INTERFACE_SERVER = """
import http.server, os, sys
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = str(os.getpid()).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), Answer).serve_forever()
"""


JAIL = (sys.executable, "-m", "data_aggregator.sandbox.loopback_only", "--inner-port")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def _get(url: str, attempts: int = 100) -> str:
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
                return str(answer.read().decode())
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no answer from {url}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")


@pytest.fixture
def jailed_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """The every-interface server behind the jail: (jail process, host port, port inside the namespace)."""
    script = tmp_path / "server.py"
    script.write_text(EVERY_INTERFACE_SERVER, encoding="utf-8")
    inner = _free_port()  # free on the host too, so a leak onto the host would be visible there
    jail = subprocess.Popen(
        [*JAIL, str(inner), "--", sys.executable, str(script), str(inner)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = read_port_line(jail, 30)
    if port is None:
        jail.kill()
        _, err = jail.communicate()
        pytest.fail(f"the jail did not start: {err}")
    yield jail, port, inner
    jail.kill()
    jail.communicate()


def test_a_server_binding_every_interface_is_reachable_only_through_loopback(
    jailed_server: tuple[subprocess.Popen[str], int, int],
) -> None:
    _, port, inner = jailed_server
    server_pid = int(_get(f"http://127.0.0.1:{port}/"))
    # Its 0.0.0.0 socket is in a namespace of its own: on this host, nothing listens on that port.
    assert _refused(inner)
    listening = Path("/proc/net/tcp").read_text(encoding="ascii")
    assert f":{inner:04X} 00000000:0000 0A" not in listening
    # And the namespace it runs in is not ours.
    assert os.readlink(f"/proc/{server_pid}/ns/net") != os.readlink("/proc/self/ns/net")
    # Large bodies pass both ways intact (the relay copies in chunks).
    assert _get(f"http://127.0.0.1:{port}/" + "x" * 5000) == str(server_pid)


def test_the_server_dies_with_the_jail_even_when_the_jail_is_killed(
    jailed_server: tuple[subprocess.Popen[str], int, int],
) -> None:
    jail, port, _ = jailed_server
    server_pid = int(_get(f"http://127.0.0.1:{port}/"))
    jail.send_signal(signal.SIGKILL)  # no chance to clean up: the kernel's parent-death signal must do it
    jail.wait()
    for _ in range(100):
        if not _pid_alive(server_pid):
            break
        time.sleep(0.05)
    assert not _pid_alive(server_pid)
    assert _refused(port)


def test_the_jail_ends_with_the_servers_exit_status(tmp_path: Path) -> None:
    jail = subprocess.run(
        [*JAIL, "9", "--", sys.executable, "-c", "import sys; sys.exit(7)"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert jail.returncode == 7
    assert jail.stdout.startswith("PORT ")


def test_missing_tools_are_named_with_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_AGGREGATOR_LOCAL_AWS", str(tmp_path / "nothing-here"))
    with pytest.raises(EmulatorUnavailableError, match=r"LocalStack, not found under .*nothing-here.*make local-aws"):
        LocalAwsTools.locate()
    site = tmp_path / "venv" / "lib" / "python3.13" / "site-packages" / "localstack" / "runtime"
    site.mkdir(parents=True)
    (site / "main.py").touch()
    (tmp_path / "venv" / "bin").mkdir()
    (tmp_path / "venv" / "bin" / "python").touch()
    with pytest.raises(EmulatorUnavailableError, match=r"Amazon DynamoDB Local, not found.*make local-aws"):
        LocalAwsTools.locate(tmp_path)


def _stand_in(tmp_path: Path, name: str, body: str) -> Path:
    script = tmp_path / name
    script.write_text(f"#!{sys.executable}\n{body}", encoding="utf-8")
    script.chmod(0o755)
    return script


# Answers DynamoDB Local's readiness probe (any POST) on the port after -port.
DYNAMODB_STAND_IN = """
import http.server, sys
class Ok(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *args): pass
http.server.HTTPServer(("0.0.0.0", int(sys.argv[sys.argv.index("-port") + 1])), Ok).serve_forever()
"""


# Reports healthy services on GATEWAY_LISTEN, which must be a loopback address.
LOCALSTACK_STAND_IN = """
import http.server, json, os
host, port = os.environ["GATEWAY_LISTEN"].split(":")
assert host == "127.0.0.1", host
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"services": dict.fromkeys(os.environ["SERVICES"].split(","), "running")}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
http.server.HTTPServer((host, int(port)), Health).serve_forever()
"""


def _tools(tmp_path: Path, *, localstack: str, java: str) -> LocalAwsTools:
    jar = tmp_path / "DynamoDBLocal.jar"
    jar.touch()
    return LocalAwsTools(
        localstack_python=_stand_in(tmp_path, "localstack-python", localstack),
        dynamodb_jar=jar,
        java=str(_stand_in(tmp_path, "java", java)),
    )


def test_a_localstack_that_fails_to_start_is_named_with_its_log(tmp_path: Path) -> None:
    tools = _tools(
        tmp_path,
        localstack="import sys; print('ImportError: cannot import name X from cryptography', file=sys.stderr); "
        "sys.exit(1)",
        java=DYNAMODB_STAND_IN,
    )
    backend = LocalAws(workdir=tmp_path / "run", tools=tools, startup_timeout_seconds=30)
    with pytest.raises(BackendStartError) as caught:
        backend.start()
    message = str(caught.value)
    assert message.startswith("LocalStack (S3, SQS, SNS, EventBridge) did not start: the process ended (exited with 1)")
    assert "cannot import name X from cryptography" in message
    assert backend.pid is None  # everything it started is stopped


def test_a_dynamodb_local_that_fails_to_start_is_named_with_its_log(tmp_path: Path) -> None:
    # A LocalStack stand-in that reports healthy services, and a "java" that is too old.
    localstack = LOCALSTACK_STAND_IN
    java = "import sys; print('UnsupportedClassVersionError: class file version 61.0', file=sys.stderr); sys.exit(1)"
    backend = LocalAws(workdir=tmp_path / "run", tools=_tools(tmp_path, localstack=localstack, java=java))
    with pytest.raises(BackendStartError) as caught:
        backend.start()
    message = str(caught.value)
    assert message.startswith("DynamoDB Local did not start: the process ended (exited with 1)")
    assert "UnsupportedClassVersionError" in message


def test_stand_ins_that_start_give_a_backend_on_loopback_with_both_endpoints(tmp_path: Path) -> None:
    """The happy path of the start-up logic, without the real servers: both endpoints, both stopped at exit."""
    localstack = LOCALSTACK_STAND_IN
    tools = _tools(tmp_path, localstack=localstack, java=DYNAMODB_STAND_IN)
    with LocalAws(workdir=tmp_path / "run", tools=tools) as backend:
        environment = backend.environment()
        assert environment["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert environment["AWS_ENDPOINT_URL_DYNAMODB"].startswith("http://127.0.0.1:")
        assert environment["AWS_ENDPOINT_URL"] != environment["AWS_ENDPOINT_URL_DYNAMODB"]
        clients = backend.clients()
        assert clients.dynamodb.meta.endpoint_url == environment["AWS_ENDPOINT_URL_DYNAMODB"]
        assert clients.s3.meta.endpoint_url == environment["AWS_ENDPOINT_URL"]
        localstack_pid = backend.pid
        assert localstack_pid is not None
    assert not _pid_alive(localstack_pid)
    assert _refused(int(environment["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]))
    assert _refused(int(environment["AWS_ENDPOINT_URL_DYNAMODB"].rsplit(":", 1)[1]))


def test_commands_asked_for_a_missing_backend_say_so_in_one_line_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from data_aggregator.cli import main as cli_main
    from e2e_tests.cli import main as e2e_main

    monkeypatch.setenv("DATA_AGGREGATOR_LOCAL_AWS", str(tmp_path / "nothing-here"))
    configs = Path(__file__).resolve().parents[2] / "e2e_tests" / "configs"
    assert e2e_main(["--config", str(configs / "single-file.json"), "--backend", "local-aws"]) == 2
    assert cli_main(["demo", "--backend", "local-aws", "--count", "1", "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith("e2e: the local-aws backend needs LocalStack")
    assert err[1].startswith("data-aggregator demo: error: the local-aws backend needs LocalStack")
    assert all("make local-aws" in line for line in err)
