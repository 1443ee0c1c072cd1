"""`make bench`: run every benchmark (or those named), print numbers, record them in results/."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

BENCHES = ["spikes", "feeds", "classify", "alerts"]
RESULTS = Path(__file__).with_name("results")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", default=BENCHES, help=f"any of {BENCHES}")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    for name in args.names:
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
