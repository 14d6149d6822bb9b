"""Run every benchmark and collect their tables into benchmarks/RESULTS.md.

Each script writes its own table to benchmarks/results/<name>.md; this runner calls them one after
another (never in parallel: they would slow each other down) and concatenates the tables in a fixed
order. A script that fails is reported and the others still run.

Usage: python benchmarks/run_all.py [--only model,infer_paths] [--skip capture]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import machine, markdown_table

from lbag.atomic import write_json, write_text

HERE = Path(__file__).resolve().parent
DURATIONS = HERE / "results" / "durations.json"
# (name, script, arguments); the name is also the results file the script writes.
BENCHMARKS = [
    ("model", "bench_model.py", []),
    ("baselines", "bench_baselines.py", []),
    ("infer_paths", "bench_infer_paths.py", ["--full", "--compile"]),
    ("infer", "bench_infer.py", []),
    ("train", "bench_train.py", []),
    ("data", "bench_data.py", []),
    ("bench_metrics", "bench_metrics.py", []),
    ("psnr_a", "bench_psnr_a.py", []),
    ("capture", "bench_capture.py", []),
    ("lbfmg", "tune_lbfmg.py", []),
    ("bundled_model", "eval_bundled.py", []),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated benchmark names to run (others keep their last results)")
    ap.add_argument("--skip", default="", help="comma-separated benchmark names not to run")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    skip = set(filter(None, args.skip.split(",")))
    failed = []
    durations = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
    for name, script, extra in BENCHMARKS:
        if (only and name not in only) or name in skip:
            continue
        print(f"== {name}: {script} {' '.join(extra)}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / script), *extra], cwd=HERE)
        seconds = time.perf_counter() - t0
        print(f"== {name}: exit {proc.returncode} after {seconds:.0f} s", flush=True)
        if proc.returncode:
            failed.append(name)
        else:
            durations[name] = round(seconds)
    write_json(DURATIONS, durations)
    rows = [[name, script, f"{durations[name]} s" if name in durations else "-"] for name, script, _ in BENCHMARKS]
    parts = [f"# Benchmark results\n\nCollected by `python benchmarks/run_all.py`; each section names the "
             f"machine it ran on. Last collection: {time.strftime('%Y-%m-%d %H:%M')} on {machine()}.\n\n"
             "Wall time of each script's last successful run:\n\n"
             + markdown_table(["benchmark", "script", "wall time"], rows)
             + f"\n\nTotal: {sum(durations.values()) / 60:.0f} min.\n"]
    for name, script, _ in BENCHMARKS:
        path = HERE / "results" / f"{name}.md"
        parts.append(path.read_text() if path.is_file() else f"## {name}\n\nNot measured yet ({script}).\n")
    out = write_text(HERE / "RESULTS.md", "\n".join(parts))
    print(f"wrote {out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
