"""`make bench`: the issue-16 suite (ceiling, work, stream, peer-quixstreams, e2e-latency,
ingest; bench/harness.py) in interleaved rounds, a table, and results/latest.json (or
results/NAME.json with --out NAME). The older single benchmarks (spikes, feeds, classify,
alerts) run when named, each into results/NAME.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

from bench import harness, stream

BENCHES = ["spikes", "feeds", "classify", "alerts"]
DEFAULT_ARTICLES = 100_000
DEFAULT_ROUNDS = 3
RESULTS = Path(__file__).with_name("results")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "names",
        nargs="*",
        default=harness.NAMES,
        help=f"any of {harness.NAMES} (the suite, the default: all) or {BENCHES}",
    )
    parser.add_argument(
        "--articles", type=int, default=DEFAULT_ARTICLES, help="work set size (100,000)"
    )
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="interleaved rounds")
    parser.add_argument(
        "--kafka", action="store_true", help="on Apache Kafka 4.4.0 (newsalert/localkafka.py)"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=600.0,
        help="e2e-latency: quiet time before the first article after idle (600; 0 skips it)",
    )
    parser.add_argument(
        "--out",
        default="latest",
        help="the suite's results as bench/results/OUT.json, .txt and -rounds.json (latest)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="work: also measure the work with this topic model (newsalert train), same run",
    )
    args = parser.parse_args()
    if args.model:
        os.environ[stream.MODEL_ENV] = str(args.model.resolve())  # read by the work's child
    unknown = [n for n in args.names if n not in harness.NAMES and n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}")
    RESULTS.mkdir(exist_ok=True)
    suite = [n for n in harness.NAMES if n in args.names]
    if suite:
        kind = "kafka" if args.kafka else "embedded"
        print(f"== {', '.join(suite)}: {args.articles} articles, {args.rounds} rounds, {kind}")
        harness.run(suite, args.articles, args.rounds, kind, args.idle_seconds, args.out)
    for name in [n for n in args.names if n in BENCHES]:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        figures = module.run()
        for key, value in figures.items():
            print(f"  {key}: {value}")
        record = {
            "bench": name,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "figures": figures,
        }
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
