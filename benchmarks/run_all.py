"""`make bench`: every headline benchmark in turn, each printing its figure beside its baseline.

Full sizes take long (the 1,000,000-row and 1 GiB runs); `--quick` runs each at a size that finishes in
minutes, for checking that the benchmarks themselves work. Record results with their date in
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

FULL = [
    ["benchmarks.bench_audit_verify", "--records", "1000000"],
    ["benchmarks.bench_directory", "--seconds", "20", "--clients", "50"],
    ["benchmarks.bench_federation"],
    ["benchmarks.bench_requests", "--requests", "1000"],
    ["benchmarks.bench_documents"],
    ["benchmarks.bench_evidence"],
    ["benchmarks.bench_taxii"],
    ["benchmarks.bench_ingest_phases"],
    ["benchmarks.bench_web", "--runs", "300"],
]
QUICK = [
    ["benchmarks.bench_audit_verify", "--records", "50000"],
    ["benchmarks.bench_directory", "--seconds", "5", "--clients", "10"],
    ["benchmarks.bench_federation", "--messages", "1000"],
    ["benchmarks.bench_requests", "--requests", "50", "--runs", "2000"],
    ["benchmarks.bench_documents", "--runs", "5"],
    ["benchmarks.bench_evidence", "--size-mib", "64"],
    ["benchmarks.bench_taxii", "--sizes", "10000", "--skip-medallion"],
    ["benchmarks.bench_ingest_phases", "--objects", "5000"],
    ["benchmarks.bench_web", "--runs", "50"],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="run only benchmarks whose module contains this text")
    args = parser.parse_args()
    failed = []
    for command in QUICK if args.quick else FULL:
        if args.only and args.only not in command[0]:
            continue
        print(f"\n=== {' '.join(command)}", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", *command], check=False)
        took = time.monotonic() - started
        print(f"=== {command[0]}: exit {done.returncode} after {took:.0f} s", flush=True)
        if done.returncode:
            failed.append(command[0])
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
