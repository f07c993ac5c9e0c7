"""Run every benchmarks/bench_*.py and collect their Markdown into one page.

    python benchmarks/run.py [--smoke] [--out reports/benchmarks.md] [NAME ...]

Each script prints its own figures, baselines and the command that produced
them. A script that fails is reported on the page and makes this exit 1.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes, for CI")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks.md")
    parser.add_argument("names", nargs="*", help="run only these (for example ingest)")
    args = parser.parse_args()

    scripts = sorted(HERE.glob("bench_*.py"))
    if args.names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.names]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "smoke mode (small sizes: figures are not comparable to targets)" if args.smoke else "full size"
    sections = [
        "# Benchmarks\n",
        f"Run {stamp} in {mode} on {platform.machine()}, {_cpu_count()} cores, "
        f"Python {platform.python_version()}.\n",
    ]
    failed = 0
    for script in scripts:
        command = [sys.executable, str(script.relative_to(ROOT))] + (["--smoke"] if args.smoke else [])
        print(f"running {' '.join(command[1:])}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            failed += 1
            sections.append(f"## {script.stem}: FAILED (exit {done.returncode})\n\n```\n{done.stderr[-3000:]}\n```\n")
            print(done.stderr[-3000:], file=sys.stderr)
            continue
        sections.append(done.stdout.strip() + f"\n\n_(script ran {elapsed:.1f} s)_\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(sections))
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    raise SystemExit(main())
