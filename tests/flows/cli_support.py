"""Running `tailor` as a user does (a subprocess with its own environment), and reading the
PNG pictures it writes."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cli(
    redis_url: str, prefix: str, cwd: Path, *args: str, **env_extra: str
) -> subprocess.CompletedProcess[str]:
    """`python -m tailor.flows.cli ARGS` in `cwd` against `redis_url` under `prefix`, with no other
    TAILOR_ setting from the test's environment, no metrics port, recovery under `cwd`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILOR_")}
    env.update(REDIS_URL=redis_url, TAILOR_REDIS_PREFIX=prefix, TAILOR_METRICS_PORT="0")
    env.update(TAILOR_RECOVERY_DIR=str(cwd / "recovery"), **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file; fails on anything else."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", data[:16]
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)
