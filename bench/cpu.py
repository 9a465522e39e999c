"""dbward's own CPU and voluntary context switches per point-query `execute_query` call,
measured from outside with a bare JSON-RPC pipe (no SDK: the client costs almost nothing
and waits for each answer before it sends the next). Run by bench/cpu.sh.

For each server and database: start it over stdio, initialize, warm up, then read
utime+stime from /proc/PID/stat and voluntary_ctxt_switches summed over /proc/PID/task/*
before and after N sequential calls, and divide by N; on PostgreSQL also the CPU of the
server's backends (every session connected to the bench database, from /proc). Every
answer is checked (a result, not an error, holding the expected row). Printed with ratios
to the baseline server of the same run (`--baseline`: another dbward binary, e.g. one
built from `main`; PostgreSQL also against the reference server
@modelcontextprotocol/server-postgres when bench/peers.sh has installed it under target/).
"""

import argparse
import json
import os
import random
import subprocess
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (every thread, dead ones included), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def switches(pid: int) -> dict[int, tuple[int, int]]:
    """(voluntary, involuntary) context switches of each live thread of `pid`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                v = n = 0
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        v = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        n = int(line.split()[1])
                out[int(tid)] = (v, n)
        except OSError:
            pass
    return out


def switch_delta(before: dict, after: dict) -> tuple[int, int]:
    """Switches made between two readings by the threads alive at the second (a thread that
    ended in between takes its count with it: the figure is then a lower bound)."""
    v = sum(a[0] - before.get(t, (0, 0))[0] for t, a in after.items())
    n = sum(a[1] - before.get(t, (0, 0))[1] for t, a in after.items())
    return v, n


class Pipe:
    """A JSON-RPC client over a child's stdin/stdout, one line per message."""

    def __init__(self, cmd: list[str], env: dict):
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     bufsize=0)
        self.out = self.proc.stdout
        self.next_id = 0

    def send(self, msg: dict) -> None:
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        rid = self.next_id
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        while True:
            line = self.out.readline()
            if not line:
                raise RuntimeError("the server closed its stdout")
            msg = json.loads(line)
            if msg.get("id") == rid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def initialize(self) -> None:
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "cpu-bench", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Target:
    """A server command and how to ask it for one row."""

    def __init__(self, name, cmd, env, tool, args_for, expect_for):
        self.name, self.cmd, self.env = name, cmd, env
        self.tool, self.args_for, self.expect_for = tool, args_for, expect_for


def pg_backends(db: str | None) -> list[int]:
    """PostgreSQL backends connected to `db` (not the psql asking)."""
    if not db:
        return []
    r = subprocess.run(
        ["psql", "-qAt", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c",
         f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"],
        capture_output=True, text=True, check=True)
    return [int(x) for x in r.stdout.split()]


def measure(t: Target, calls: int, rows: int, pg_db: str | None) -> dict:
    p = Pipe(t.cmd, t.env)
    try:
        p.initialize()

        def one(i: int) -> None:
            r = p.request("tools/call", {"name": t.tool, "arguments": t.args_for(i)})
            assert not r.get("isError"), f"{t.name}: {str(r)[:300]}"
            text = json.dumps(r)
            assert t.expect_for(i) in text, f"{t.name}: {t.expect_for(i)} not in {text[:300]}"

        for i in range(200):
            one(1 + i % rows)
        threads = len(os.listdir(f"/proc/{p.proc.pid}/task"))
        ids = [random.randint(1, rows) for _ in range(calls)]
        backends = pg_backends(pg_db)
        b0 = sum(cpu_seconds(b) for b in backends)
        c0, s0, w0 = cpu_seconds(p.proc.pid), switches(p.proc.pid), time.perf_counter()
        for i in ids:
            one(i)
        w1, c1, s1 = time.perf_counter(), cpu_seconds(p.proc.pid), switches(p.proc.pid)
        b1 = sum(cpu_seconds(b) for b in backends)
        vol, invol = switch_delta(s0, s1)
        return {
            "cpu_us": (c1 - c0) / calls * 1e6,
            "pg_us": (b1 - b0) / calls * 1e6 if backends else None,
            "vcsw": vol / calls,
            "ivcsw": invol / calls,
            "calls_s": calls / (w1 - w0),
            "threads": threads,
        }
    finally:
        p.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dbward", required=True)
    ap.add_argument("--baseline", help="another dbward binary measured the same way")
    ap.add_argument("--pg-db", help="PostgreSQL database on 127.0.0.1:5432 with `servers`")
    ap.add_argument("--reference", help="server-postgres's dist/index.js (node)")
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each; the median is kept")
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="dbward-cpu-")
    config = os.path.join(data, "dbward.toml")
    with open(config, "w") as f:
        # The detector's call-rate threshold lifted for the bench; audit stays on.
        f.write("[detector]\nmax_calls = 100000000\n")
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
            "DBWARD_LOG": os.environ.get("DBWARD_LOG", "warn")}
    binaries = [("dbward", args.dbward)] + ([("baseline", args.baseline)] if args.baseline else [])
    targets = []
    for label, binary in binaries:
        env = dict(base, DBWARD_DATA_DIR=os.path.join(data, label))
        targets.append(("sqlite", 100, Target(
            label, [binary, "serve", "--config", config], env, "execute_query",
            lambda i: {"query": "SELECT hostname, os, status FROM servers WHERE id = ?",
                       "params": [i]},
            lambda i: "hostname")))
    pg_url = f"postgresql://postgres@127.0.0.1:5432/{args.pg_db}?sslmode=disable"
    if args.pg_db:
        for label, binary in binaries:
            env = dict(base, DBWARD_DATA_DIR=os.path.join(data, label + "-pg"),
                       DBWARD_DATABASE_URL=pg_url)
            targets.append(("postgres", 20000, Target(
                label, [binary, "serve", "--config", config], env, "execute_query",
                lambda i: {"query": "SELECT hostname, os, status FROM servers WHERE id = $1",
                           "params": [i]},
                lambda i: f"srv-{i}\"")))
        if args.reference:
            targets.append(("postgres", 20000, Target(
                "reference", ["node", args.reference, pg_url], base, "query",
                lambda i: {"sql": f"SELECT hostname, os, status FROM servers WHERE id = {i}"},
                lambda i: f"srv-{i}\\\"")))
    results: dict[tuple[str, str], dict] = {}
    for _ in range(args.rounds):
        for db, rows, t in targets:  # interleaved, so a noisy moment hits every server
            r = measure(t, args.calls, rows, args.pg_db if db == "postgres" else None)
            results.setdefault((db, t.name), []).append(r)
            print(f"{db} {t.name}: {json.dumps(r)}", file=sys.stderr, flush=True)
    med = {}
    for key, runs in results.items():
        # Each figure's own median over the runs.
        med[key] = {}
        for k in runs[0]:
            vals = sorted(r[k] for r in runs if r[k] is not None)
            med[key][k] = vals[len(vals) // 2] if vals else None
    print(f"\nmedians of {args.rounds} runs of {args.calls} sequential point queries over one stdio pipe")
    print("| database | server | CPU us/call | PostgreSQL CPU us/call | vol. switches/call | invol./call | calls/s | threads | CPU vs baseline | CPU vs reference | PostgreSQL CPU vs baseline | PostgreSQL CPU vs reference |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (db, name), r in med.items():
        def ratio(other, key="cpu_us"):
            o = med.get((db, other))
            return f"{r[key] / o[key]:.2f}x" if o and o.get(key) and r.get(key) else "-"
        pg = f"{r['pg_us']:,.0f}" if r.get("pg_us") else "-"
        print(f"| {db} | {name} | {r['cpu_us']:,.0f} | {pg} | {r['vcsw']:.1f} | {r['ivcsw']:.1f} "
              f"| {r['calls_s']:,.0f} | {r['threads']} | {ratio('baseline')} | {ratio('reference')} "
              f"| {ratio('baseline', 'pg_us')} | {ratio('reference', 'pg_us')} |")


if __name__ == "__main__":
    main()
