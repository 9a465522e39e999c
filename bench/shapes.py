"""PostgreSQL `execute_query` calls of different shapes, sequential over a bare JSON-RPC
pipe (as bench/cpu.py): wall time, dbward's CPU and PostgreSQL's CPU per call, for dbward
and a baseline binary in the same run, with ratios. The shapes: a point query by an
integer parameter (the steady state), the same by a string parameter (its type inferred
by the database), a point query that finds no row, and an `explain_query` of a point query.
Run by bench/shapes.sh.
"""

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from cpu import Target, measure  # noqa: E402

SQL = "SELECT hostname, os, status FROM servers WHERE id = $1"
ROWS = 20000
SHAPES = {
    "integer parameter": ("execute_query", lambda i: {"query": SQL, "params": [i]},
                          lambda i: f"srv-{i}"),
    "string parameter": ("execute_query", lambda i: {"query": SQL, "params": [str(i)]},
                         lambda i: f"srv-{i}"),
    "no row": ("execute_query", lambda i: {"query": SQL, "params": [-i]},
               lambda i: '"row_count": 0'),
    "explain_query": ("explain_query",
                      lambda i: {"query": f"SELECT hostname FROM servers WHERE id = {i}"},
                      lambda i: "Index Scan"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dbward", required=True)
    ap.add_argument("--baseline", help="another dbward binary measured the same way")
    ap.add_argument("--pg-db", required=True)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each; the median is kept")
    a = ap.parse_args()
    binaries = {"dbward": a.dbward}
    if a.baseline:
        binaries["baseline"] = a.baseline
    work = tempfile.mkdtemp(prefix="dbward-shapes-")
    config = os.path.join(work, "dbward.toml")
    with open(config, "w") as f:
        # Audit on; the detector's call-rate thresholds lifted (thousands of calls).
        f.write("[detector]\nmax_calls = 100000000\nprobing_refusals = 100000000\n"
                "high_severity_refusals = 100000000\n")
    url = f"postgresql://postgres@127.0.0.1:5432/{a.pg_db}?sslmode=disable"
    results: dict = {}
    for shape, (tool, args_for, expect_for) in SHAPES.items():
        for rnd in range(a.rounds):
            for name, binary in binaries.items():
                data = os.path.join(work, f"{name}-{rnd}")
                os.makedirs(data, exist_ok=True)
                env = {"PATH": os.environ["PATH"], "DBWARD_DATABASE_URL": url,
                       "DBWARD_DATA_DIR": data, "DBWARD_LOG": "error"}
                t = Target(name, [binary, "serve", "--config", config], env,
                           tool, args_for, expect_for)
                m = measure(t, a.calls, ROWS, a.pg_db)
                m["wall_us"] = 1e6 / m["calls_s"]
                results.setdefault((shape, name), []).append(m)
    print(f"medians of {a.rounds} runs of {a.calls} sequential calls over one stdio pipe")
    print("| shape | server | wall us/call | dbward CPU us/call | PostgreSQL CPU us/call "
          "| wall vs baseline | PostgreSQL CPU vs baseline |")
    print("|---|---|---|---|---|---|---|")
    med = {k: {f: statistics.median(m[f] for m in v) for f in ("wall_us", "cpu_us", "pg_us")}
           for k, v in results.items()}
    for shape in SHAPES:
        for name in binaries:
            m = med[(shape, name)]
            base = med.get((shape, "baseline"))
            ratio = (lambda f: f"{m[f] / base[f]:.2f}x" if base and base[f] else "-")
            print(f"| {shape} | {name} | {m['wall_us']:,.0f} | {m['cpu_us']:,.0f} | "
                  f"{m['pg_us']:,.0f} | {ratio('wall_us')} | {ratio('pg_us')} |")


if __name__ == "__main__":
    main()
