"""The full reliability run: every test of tests/reliability at its full size, with a summary.

    .venv/bin/python tests/reliability/full_run.py            # 20 seeds, 20 cycles, 50 soak cycles
    .venv/bin/python tests/reliability/full_run.py --soak 10  # any size can be changed
    .venv/bin/python tests/reliability/full_run.py -k faults  # other arguments go to pytest

`make test` runs the same tests reduced (see docs/guides/reliability.md). This runs them at
the sizes of issue 6, collects the figures each test records, and writes one JSON summary
(seeds run, faults injected by kind, objects created, leaked and duplicated, applies needed,
provider memory, durations) to --out, printing it too. Exit status is pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="fault seeds (default 20)")
    parser.add_argument("--interrupt-seeds", type=int, default=10, help="random-interrupt seeds (default 10)")
    parser.add_argument("--kill-seeds", type=int, default=20, help="kill -9 seeds, per target (default 20)")
    parser.add_argument("--cycles", type=int, default=20, help="30-pool concurrency cycles (default 20)")
    parser.add_argument("--soak", type=int, default=50, help="soak cycles (default 50)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "reliability.json",
                        help="summary file (default bench/results/reliability.json)")
    args, args.pytest_args = parser.parse_known_args(argv)  # the rest goes to pytest, e.g. -k faults
    return args


def summarise(records: list[dict], durations: dict[str, float], seconds: float, exit_code: int,
              sizes: dict[str, int]) -> dict:
    faults = [r for r in records if r["kind"] == "faults"]
    soak = [r for r in records if r["kind"] == "soak"]
    injected: Counter = Counter()
    created: Counter = Counter()
    leaked: Counter = Counter()
    for r in faults + soak:
        injected.update({k: v for k, v in r["faults"].items() if isinstance(v, (int, float))})
        created.update(r["created"])
        leaked.update(r["leaked"])
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "exit_code": exit_code,
        "seconds": round(seconds, 1),
        "sizes": sizes,
        "faults": {
            "seeds_run": len(faults),
            "applies_needed": dict(Counter(str(r["applies"]) for r in faults)),
            "plans_needed": dict(Counter(str(r["plans"]) for r in faults)),
            "destroys_needed": dict(Counter(str(r["destroys"]) for r in faults)),
            "duplicates": sum(len(v) for r in faults for v in r["duplicates"].values()),
            "seconds_per_seed": [r["seconds"] for r in faults],
        },
        "faults_injected": {k: round(v, 1) for k, v in sorted(injected.items())},
        "objects_created": dict(sorted(created.items())),
        "objects_leaked": sum(leaked.values()),
        "interrupts": [r for r in records if r["kind"] == "interrupt"],
        "kills": [r for r in records if r["kind"] == "kill"],
        "concurrency": [r for r in records if r["kind"] == "concurrency"],
        "soak": soak,
        "test_seconds": {name: round(s, 1) for name, s in sorted(durations.items())},
    }


def durations_from(junit: Path) -> dict[str, float]:
    if not junit.exists():
        return {}
    tree = ElementTree.parse(junit)
    return {f"{case.get('classname')}::{case.get('name')}": float(case.get("time", 0))
            for case in tree.iter("testcase")}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = {"RAYDOG_RELIABILITY_SEEDS": args.seeds, "RAYDOG_INTERRUPT_SEEDS": args.interrupt_seeds,
             "RAYDOG_KILL_SEEDS": args.kill_seeds,
             "RAYDOG_CONCURRENCY_CYCLES": args.cycles, "RAYDOG_SOAK_CYCLES": args.soak}
    with tempfile.TemporaryDirectory(prefix="raydog-reliability-") as scratch:
        report, junit = Path(scratch) / "records.jsonl", Path(scratch) / "junit.xml"
        env = {**os.environ, **{k: str(v) for k, v in sizes.items()}, "RAYDOG_RELIABILITY_REPORT": str(report)}
        started = time.monotonic()
        exit_code = subprocess.call(
            [sys.executable, "-m", "pytest", "tests/reliability", "-p", "no:cacheprovider", "-q", "-rA",
             f"--junitxml={junit}", "-o", "timeout=7200", *args.pytest_args],
            cwd=REPO, env=env)
        seconds = time.monotonic() - started
        records = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
        summary = summarise(records, durations_from(junit), seconds, exit_code, sizes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("interrupts", "soak", "test_seconds")}, indent=2))
    print(f"summary written to {args.out}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
