"""Redis with ACL users and TLS only (a generated self-signed CA), as production runs it:
the producer and the worker work over `rediss://user:password@...`, the worker with only the
permissions the README lists; wrong credentials or a missing permission stop `tailor run` at
start-up with exit code 2 and one line, instead of retrying for ever or failing mid-run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tailor.operators.redis.permissions import acl_rules
from tests.conftest import free_port, system_redis_server

USER, PASSWORD = "tailor", "correct-horse-battery"
PREFIX = "tls"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """A throw-away CA and a server certificate for 127.0.0.1, valid for one day."""
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=tailor-test-ca",
        cwd=folder,
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=folder,
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "server.crt",
        "-extfile",
        "san.ext",
        cwd=folder,
    )


class TlsServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        binary = system_redis_server()
        if binary is None or shutil.which("openssl") is None:
            pytest.skip("needs Debian's redis-server (built with TLS) and openssl")
        make_certificates(folder)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                "server.crt",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.crt",
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
                "--user",
                "default",
                "off",
                "--user",
                USER,
                "on",
                f">{PASSWORD}",
                "~*",
                "&*",
                "+@all",
            ],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis.from_url(self.url())
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    output = self.proc.stdout.read().decode() if self.proc.stdout else ""
                    lowered = output.lower()
                    # "not supported" (built without TLS) or, before Redis 6's TLS directives
                    # existed in the build, "Bad directive" on the tls-port line
                    if "tls" in lowered and ("support" in lowered or "bad directive" in lowered):
                        pytest.skip("this redis-server was built without TLS")
                    raise AssertionError(f"redis-server did not start: {output[-500:]}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # waiting for the server to accept, not synchronising a test

    def url(self, password: str = PASSWORD, user: str = USER) -> str:
        ca = self.folder / "ca.crt"
        return (
            f"rediss://{user}:{password}@127.0.0.1:{self.port}/0"
            f"?ssl_ca_certs={ca}&ssl_cert_reqs=required"
        )

    def add_user(self, name: str, rules: list[str]) -> str:
        """An ACL user with `rules` (and this test's password); returns its URL."""
        client = redis.Redis.from_url(self.url())
        client.execute_command("ACL", "SETUSER", name, "reset", "on", f">{PASSWORD}", *rules)
        client.close()
        return self.url(user=name)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    server = TlsServer(tmp_path)
    yield server
    server.stop()


def tailor(url: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", "--config", str(config), *args],
        env={**os.environ, "REDIS_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def config_file(folder: Path) -> Path:
    path = folder / "tailor.toml"
    path.write_text(
        f'[redis]\nprefix = "{PREFIX}"\n[metrics]\nport = 0\n'
        f'[recovery]\nenabled = false\ndir = "{folder / "recovery"}"\n'
    )
    return path


def test_worker_runs_over_tls_with_an_acl_user(tls_server: TlsServer, data_dir: Path) -> None:
    config = config_file(tls_server.folder)
    events = data_dir / "otto-sample" / "train_events.csv"
    produced = tailor(tls_server.url(), config, "produce", str(events), "--no-progress")
    assert produced.returncode == 0, produced.stderr[-2000:]
    least_privilege = tls_server.add_user("worker", acl_rules(PREFIX))  # the README's line
    done = tailor(least_privilege, config, "run", "--until-drained")
    assert done.returncode == 0, done.stderr[-2000:]
    client = redis.Redis.from_url(tls_server.url())
    assert sum(1 for _ in client.scan_iter(match=f"{PREFIX}:user:*")) == 20
    assert client.hget(f"{PREFIX}:user:0", "version") == b"276"


def test_plain_connections_and_wrong_passwords_are_refused(tls_server: TlsServer) -> None:
    plain = redis.Redis(port=tls_server.port, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    config = config_file(tls_server.folder)
    wrong = tailor(tls_server.url(password="wrong"), config, "run")
    assert wrong.returncode == 2
    assert "redis.url" in wrong.stderr and "credentials" in wrong.stderr


@pytest.mark.parametrize(
    ("rules", "named"),
    [
        # a user allowed ACL DRYRUN is asked that way; the others are probed
        (["~*", "&*", "+@all", "-@scripting"], "commands evalsha, script|exists, script|load"),
        ([*acl_rules(PREFIX), "-multi"], "commands multi"),
        ([*acl_rules(PREFIX), "resetkeys", "~other:*"], f"keys {PREFIX}:*"),
    ],
)
def test_a_user_missing_a_permission_is_refused_at_start_up(
    tls_server: TlsServer, rules: list[str], named: str
) -> None:
    config = config_file(tls_server.folder)
    refused = tailor(tls_server.add_user("short", rules), config, "run", "--until-drained")
    assert refused.returncode == 2, refused.stderr[-2000:]
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr[-2000:]
    assert lines[0].startswith("tailor: configuration error: redis.url: ")
    assert "lacks permissions the worker needs" in lines[0] and named in lines[0], lines[0]
