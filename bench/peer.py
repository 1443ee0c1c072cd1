"""``peer-quixstreams``: a Quix Streams application (bench/quix_peer.py) doing the same
per-article work on the same broker and data, timed like ``stream`` from a reader of its output
topic. Quix Streams 3.28 needs pydantic < 2.14, below this project's pin, so it runs from a
virtual environment of its own, bench/.venv-quix, created here on first use.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import workset
from bench.stream import stop_process, window_figures

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-quix"
PYTHON = VENV / "bin" / "python"
# Quix itself, and the third-party modules streams.pipeline imports (pins as constraints.txt).
REQUIREMENTS = ["quixstreams==3.28.*", "pyahocorasick==2.3.1", "PyYAML==6.0.4"]


def ensure_venv() -> Path:
    if not PYTHON.exists():
        print(f"  creating {VENV} (Quix Streams 3.28, once)", flush=True)
        subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)
    return PYTHON


async def peer(
    broker: workset.Broker, source: str, app_id: str, expected: int, inputs: int
) -> dict[str, Any]:
    python = ensure_venv()
    output = f"{app_id}.peer-quix.classified"
    await workset.create_topics(broker.bootstrap, app_id, [output])
    repo = str(HERE.parent)
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    timeout = max(600.0, expected / 50)
    process = await asyncio.create_subprocess_exec(
        str(python),
        str(HERE / "quix_peer.py"),
        broker.bootstrap,
        source,
        output,
        f"{app_id}-peer-quix",
        str(expected),
        "60",  # Quix stops after this long without a new message
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        seen = await workset.observe(
            broker.bootstrap,
            output,
            expected,
            [process.pid, *broker.pids()],
            timeout_seconds=timeout,
        )
        peak = workset.peak_rss_bytes(process.pid)
        async with asyncio.timeout(60):
            stdout, stderr = await process.communicate()
    finally:
        await stop_process(process)
    lines = stdout.decode().strip().splitlines()
    reported = json.loads(lines[-1]) if lines else {}
    if not seen.cpu_at_last.get(process.pid) and "cpu_seconds" in reported:
        seen.cpu_at_last[process.pid] = reported["cpu_seconds"]  # it had exited already
    figures = window_figures(seen, process.pid, broker, expected, inputs)
    if reported:
        figures["peak_rss_bytes"] = reported["peak_rss_bytes"]
    elif peak is not None:
        figures["peak_rss_bytes"] = peak
    else:
        print(f"  quix peer said: {stderr.decode()[-1000:]}", file=sys.stderr)
    return figures
