"""dbward's start-up on PostgreSQL, measured from outside over a bare JSON-RPC pipe: the
time from spawning `dbward serve` to the first query's result (initialize, then one
`execute_query`), and the CPU the process used for it (its rusage from wait4, every thread),
the median of RUNS starts. Each binary is started with a fresh data directory (a new audit
log) and with one whose audit log is LOG_MB MiB (copies of a real entry: start-up reads
only the log's tail, so the figure should not grow with it). Run by bench/start.sh; ratios
to the baseline binary of the same run (e.g. one built from main and copied aside).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}}}
READY = {"jsonrpc": "2.0", "method": "notifications/initialized"}
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "execute_query",
                   "arguments": {"query": "SELECT hostname FROM servers WHERE id = $1",
                                 "params": [3]}}}


def start_once(binary: str, data_dir: str, url: str) -> tuple[float, float]:
    """(ms to the first result, ms of CPU the process used from spawn to exit)."""
    env = {"PATH": os.environ["PATH"], "DBWARD_DATABASE_URL": url,
           "DBWARD_DATA_DIR": data_dir, "DBWARD_LOG": "error"}
    config = os.path.join(data_dir, "dbward.toml")
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "serve", "--config", config], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    for msg in (INIT, READY, CALL):
        p.stdin.write((json.dumps(msg) + "\n").encode())
    p.stdin.flush()
    while True:
        line = p.stdout.readline()
        assert line, "dbward exited before answering"
        answer = json.loads(line)
        if answer.get("id") == 2:
            break
    elapsed = time.perf_counter() - t0
    result = answer.get("result") or {}
    assert not result.get("isError") and "srv-3" in json.dumps(result), answer
    p.stdin.close()
    _, status, usage = os.wait4(p.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return elapsed * 1e3, (usage.ru_utime + usage.ru_stime) * 1e3


def big_log(data_dir: str, binary: str, url: str, mib: int) -> None:
    """Grows the data directory's audit log to `mib` MiB with copies of its last entry."""
    start_once(binary, data_dir, url)
    path = os.path.join(data_dir, "audit.jsonl")
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    filler = lines[-1] * max(1, (mib << 20) // len(lines[-1]))
    with open(path, "wb") as f:
        f.write(filler)
        f.writelines(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dbward", required=True)
    ap.add_argument("--baseline")
    ap.add_argument("--db", required=True)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--log-mb", type=int, default=50)
    args = ap.parse_args()
    url = f"postgresql://postgres@127.0.0.1:5432/{args.db}?sslmode=disable"
    binaries = {"dbward": args.dbward}
    if args.baseline:
        binaries["baseline"] = args.baseline
    results: dict = {}
    root = tempfile.mkdtemp(prefix="dbward-start-")
    try:
        for case in ("fresh log", f"{args.log_mb} MiB log"):
            dirs = {}
            for name in binaries:
                d = os.path.join(root, f"{name}-{case.split()[0]}")
                os.makedirs(d)
                with open(os.path.join(d, "dbward.toml"), "w") as f:
                    f.write("")
                dirs[name] = d
            samples = {name: [] for name in binaries}
            for i in range(args.runs):
                for name, binary in binaries.items():
                    d = dirs[name]
                    if case == "fresh log":
                        shutil.rmtree(d)
                        os.makedirs(d)
                        open(os.path.join(d, "dbward.toml"), "w").close()
                    elif i == 0:
                        big_log(d, binary, url, args.log_mb)
                    samples[name].append(start_once(binary, d, url))
            for name, xs in samples.items():
                results[(case, name)] = (statistics.median(x[0] for x in xs),
                                         statistics.median(x[1] for x in xs))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"medians of {args.runs} starts: spawn to the first PostgreSQL result over a bare pipe")
    print("| audit log | binary | first result (ms) | process CPU (ms) | first result vs baseline | CPU vs baseline |")
    print("|---|---|---|---|---|---|")
    for (case, name), (ms, cpu) in results.items():
        base = results.get((case, "baseline"))
        r1 = f"{ms / base[0]:.2f}x" if base and name != "baseline" else "-"
        r2 = f"{cpu / base[1]:.2f}x" if base and name != "baseline" else "-"
        print(f"| {case} | {name} | {ms:.1f} | {cpu:.1f} | {r1} | {r2} |")


if __name__ == "__main__":
    main()
