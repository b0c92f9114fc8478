"""A real Prometheus (the Debian binary) on a free port with temporary storage, configured
from `deploy/prometheus/prometheus.yml` with a one-second scrape and rule interval."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tests.conftest import free_port
from tests.deploy.stack_support import PROMETHEUS_CONFIG, RULES, load_yaml

#: Against a hang only, never to synchronise.
START_DEADLINE_S = 60.0


def scrape_config(worker_target: str) -> dict[str, Any]:
    """The stack's config, scraping `worker_target` as the worker job, every second, with the
    stack's rules; the other jobs (the API, Prometheus itself) are left out."""
    config = dict(load_yaml(PROMETHEUS_CONFIG))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    (worker,) = [job for job in config["scrape_configs"] if job["job_name"] == "tailor-worker"]
    worker["static_configs"] = [{"targets": [worker_target]}]
    config["scrape_configs"] = [worker]
    return config


class PrometheusServer:
    """`prometheus` scraping one worker; `query` runs PromQL through the HTTP API."""

    def __init__(self, binary: str, worker_target: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tailor-prometheus-"))
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(scrape_config(worker_target)))
        self.log = self.dir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + START_DEADLINE_S
        while not self._ready():
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.1)  # polling for readiness with a deadline
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except (urllib.error.URLError, ConnectionError):
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) `promql` evaluates to now."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql}
        )
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = json.loads(reply.read())
        assert body["status"] == "success", body
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its `health` ("ok", "err", "unknown": not evaluated yet)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/rules"
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = json.loads(reply.read())
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]


def has_data(result: list[dict[str, Any]]) -> bool:
    """At least one sample with a number (a quantile of nothing is NaN)."""
    return any(math.isfinite(float(sample["value"][1])) for sample in result)
