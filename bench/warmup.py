"""Cold kernel warm-up: the app's warm-up job from an empty Numba cache, with and without its second process.

Each run is a fresh Python process with its own empty NUMBA_CACHE_DIR that runs
``simulator.functional.warmup.warmup_job`` to its end with the plan the app makes at start (every kernel group, the
open tab's first: --tab, the Backprop tab of a first start by default); the two configurations alternate round by
round. Floor (issue 12): the cold warm-up of every kernel under 45 s on the 2-core
machine. The one-process run is the reference: the second process should take it to about half where two cores are
free.

    python bench/warmup.py              # 1 round of each (about two minutes on an idle 2-core machine)
    python bench/warmup.py --rounds 3 --tab Playground
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR_SECONDS = 45.0

CHILD = """
import sys
from simulator.functional.warmup import TAB_KERNELS, default_plan, warmup_job
plan = default_plan()
plan.prefer(TAB_KERNELS.get(sys.argv[2], ()))
for _ in warmup_job(plan, helper=sys.argv[1] == "1"):
    pass
"""


def cold_run(helper: bool, tab: str) -> float:
    """Seconds for one cold warm-up in a fresh process (its imports included)."""
    with tempfile.TemporaryDirectory(prefix="bps-cold-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", CHILD, "1" if helper else "0", tab], cwd=ROOT, env=env, check=True)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--rounds", type=int, default=1, help="cold runs of each configuration (default 1)")
    ap.add_argument("--tab", default="Backprop", help="the tab open at start, whose kernels go first (default "
                    "Backprop, where a first start opens); '' for the plain module order")
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {"one process": [], "with helper": []}
    for r in range(args.rounds):
        for name, helper in (("one process", False), ("with helper", True)):
            times[name].append(cold_run(helper, args.tab))
            print(f"round {r + 1}: {name:12s} {times[name][-1]:6.1f} s", flush=True)
    one, two = (statistics.median(times[k]) for k in ("one process", "with helper"))
    print(f"\nmedian cold warm-up: one process {one:.1f} s, with the helper {two:.1f} s ({one / two:.2f}x faster)")
    ok = two < FLOOR_SECONDS
    print(f"  {'PASS' if ok else 'FAIL'}  cold warm-up < {FLOOR_SECONDS:.0f} s   {two:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
