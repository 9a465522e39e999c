"""dbward beside its peers, measured in one run with the same client (the official Python MCP
SDK) on the same PostgreSQL point query: `SELECT hostname, os, status FROM servers WHERE
id = $1` on a 20,000-row table. Run by bench/peers.sh, which prepares the database and
installs the peers under target/ (never committed).

For each server: cold start to the first result, sequential p50/p99 over one stdio session
with the server's and PostgreSQL's CPU per call (from /proc) and the client's own, calls/s
with 8 stdio sessions (8 server processes, as desktop clients run them), and calls/s with 8
and 32 HTTP clients where the server speaks HTTP. Every answer is checked (one row, the
right hostname). The servers take turns over several rounds (the machine's load drifts; a
server measured in one window alone can look twice as fast or slow as in the next), and
figures are printed as medians over the rounds, with ratios to the reference server
(@modelcontextprotocol/server-postgres) taken within each round: their median and range.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

ROWS = 20_000
QUERY = "SELECT hostname, os, status FROM servers WHERE id = {}"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def children_of(pid: int) -> list[int]:
    """Every descendant of `pid`."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def pg_backends(db: str) -> list[int]:
    """PostgreSQL backends connected to the bench database (not this script's psql)."""
    r = subprocess.run(
        ["psql", "-qAt", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c",
         f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"],
        capture_output=True, text=True, check=True)
    return [int(x) for x in r.stdout.split()]


class Server:
    """How to start one server and call its query tool."""

    def __init__(self, name, stdio_cmd, env, tool, args_for, http_cmd=None, http_path="/mcp",
                 http_token=None):
        self.name = name
        self.stdio_cmd = stdio_cmd
        self.env = env
        self.tool = tool
        self.args_for = args_for
        self.http_cmd = http_cmd
        self.http_path = http_path
        self.http_token = http_token


def check(result, row_id: int, server: str) -> None:
    """The same check of every server's answer (its text content), so that the client's
    CPU per call counts the same work for each."""
    assert not result.is_error, f"{server}: {result}"
    text = "".join(getattr(c, "text", "") for c in result.content)
    assert f"srv-{row_id}" in text, f"{server}: srv-{row_id} not in {text[:300]}"


async def call(session: ClientSession, server: Server, row_id: int) -> None:
    r = await session.call_tool(server.tool, server.args_for(row_id))
    check(r, row_id, server.name)


def params_for(server: Server) -> StdioServerParameters:
    return StdioServerParameters(command=server.stdio_cmd[0], args=server.stdio_cmd[1:],
                                 env=server.env)


async def cold_start(server: Server) -> float:
    started = time.perf_counter()
    async with stdio_client(params_for(server)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            await call(session, server, 1)
            return time.perf_counter() - started


async def sequential(server: Server, seconds: float, db: str) -> dict:
    async with stdio_client(params_for(server)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for i in range(50):
                await call(session, server, 1 + i)
            procs = children_of(os.getpid())
            backends = pg_backends(db)
            s0 = sum(cpu_seconds(p) for p in procs)
            b0 = sum(cpu_seconds(p) for p in backends)
            c0 = time.process_time()
            lat = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t = time.perf_counter()
                await call(session, server, random.randint(1, ROWS))
                lat.append(time.perf_counter() - t)
            n = len(lat)
            s1 = sum(cpu_seconds(p) for p in procs)
            b1 = sum(cpu_seconds(p) for p in pg_backends(db) if p in backends)
            c1 = time.process_time()
    lat.sort()
    return {
        "p50_ms": lat[n // 2] * 1e3,
        "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1e3,
        "server_us": (s1 - s0) / n * 1e6,
        "pg_us": (b1 - b0) / n * 1e6,
        "client_us": (c1 - c0) / n * 1e6,
        "calls": n,
    }


async def stdio_session_loop(server: Server, seconds: float, lat: list) -> None:
    async with stdio_client(params_for(server)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for i in range(20):
                await call(session, server, 1 + i)
            await start_barrier.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t = time.perf_counter()
                await call(session, server, random.randint(1, ROWS))
                lat.append(time.perf_counter() - t)


start_barrier: asyncio.Barrier


def stdio_worker(server: Server, seconds: float, index: int, q) -> None:
    """One process, one stdio session (the way 8 desktop clients would run). dbward
    processes each get their own data directory: one audit log has one writer."""
    async def run():
        global start_barrier
        start_barrier = asyncio.Barrier(1)
        lat: list = []
        await stdio_session_loop(server, seconds, lat)
        q.put(lat)
    if "DBWARD_DATA_DIR" in server.env:
        d = os.path.join(server.env["DBWARD_DATA_DIR"], f"session-{index}")
        os.makedirs(d, exist_ok=True)
        server.env = dict(server.env, DBWARD_DATA_DIR=d)
    try:
        asyncio.run(run())
    except BaseException as e:  # the parent must not wait for a result that never comes
        q.put(f"error: {e!r}")
        raise


def many(target, args_list) -> list:
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=target, args=(*a, q)) for a in args_list]
    for p in procs:
        p.start()
    out = [q.get() for _ in procs]
    for p in procs:
        p.join()
    errors = [o for o in out if isinstance(o, str)]
    if errors:
        raise RuntimeError(errors[0])
    return out


def throughput(lists: list, seconds: float) -> dict:
    lat = sorted(x for l in lists for x in l)
    n = len(lat)
    return {"calls_s": n / seconds, "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1e3 if n else 0}


def http_worker(server: Server, url: str, clients: int, seconds: float, q) -> None:
    async def one(lat):
        headers = {"Authorization": f"Bearer {server.http_token}"} if server.http_token else {}
        client = httpx2.AsyncClient(headers=headers, timeout=60)
        async with streamable_http_client(url, http_client=client) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                for i in range(10):
                    await call(session, server, 1 + i)
                end = time.perf_counter() + seconds
                while time.perf_counter() < end:
                    t = time.perf_counter()
                    await call(session, server, random.randint(1, ROWS))
                    lat.append(time.perf_counter() - t)

    async def run():
        lat: list = []
        await asyncio.gather(*(one(lat) for _ in range(clients)))
        q.put(lat)
    try:
        asyncio.run(run())
    except BaseException as e:
        q.put(f"error: {e!r}")
        raise


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_run(server: Server, clients: int, seconds: float) -> dict:
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in server.http_cmd]
    proc = subprocess.Popen(cmd, env=server.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, f"{server.name} exited"
                assert time.monotonic() < deadline, f"{server.name} did not listen"
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}{server.http_path}"
        workers = min(clients, 4)
        per = [clients // workers + (1 if i < clients % workers else 0) for i in range(workers)]
        lists = many(http_worker, [(server, url, n, seconds) for n in per])
        return throughput(lists, seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def servers(args, url: str, data_dir: str) -> list[Server]:
    base_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    peers = args.peers
    config = os.path.join(data_dir, "dbward.toml")
    with open(config, "w") as f:
        # The detector's call-rate threshold lifted for the bench; audit stays on.
        f.write("[detector]\nmax_calls = 100000000\n")
    token = "bench-" + os.urandom(16).hex()
    dbward_env = dict(base_env, DBWARD_DATABASE_URL=url, DBWARD_DATA_DIR=data_dir,
                      DBWARD_LOG="warn", DBWARD_HTTP_TOKEN=token)
    out = [
        Server("server-postgres 0.6.2",
               ["node", f"{peers}/node_modules/@modelcontextprotocol/server-postgres/dist/index.js", url],
               base_env, "query", lambda i: {"sql": QUERY.format(i)}),
        Server("dbhub", ["node", f"{peers}/node_modules/@bytebase/dbhub/dist/index.js",
                         "--transport", "stdio", "--dsn", url],
               base_env, "execute_sql", lambda i: {"sql": QUERY.format(i)},
               http_cmd=["node", f"{peers}/node_modules/@bytebase/dbhub/dist/index.js",
                         "--transport", "http", "--port", "{port}", "--dsn", url]),
        Server("dbward", [args.dbward, "serve", "--config", config], dbward_env, "execute_query",
               lambda i: {"query": QUERY.format("$1"), "params": [i]},
               http_cmd=[args.dbward, "serve", "--config", config, "--transport", "http",
                         "--listen", "127.0.0.1:{port}"], http_token=token),
    ]
    return [s for s in out if not args.only or args.only in s.name]


def measure(s: Server, args) -> dict:
    """One round of every measurement of one server."""
    r: dict = {"cold_ms": asyncio.run(cold_start(s)) * 1e3}
    r.update(asyncio.run(sequential(s, args.seconds, args.db)))
    r["stdio8"] = throughput(
        many(stdio_worker, [(s, args.seconds, i) for i in range(8)]), args.seconds)
    if s.http_cmd:
        r["http8"] = http_run(s, 8, args.seconds)
        r["http32"] = http_run(s, 32, args.seconds)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dbward", required=True)
    ap.add_argument("--db", required=True, help="database name on 127.0.0.1:5432")
    ap.add_argument("--peers", required=True, help="folder with node_modules of the peers")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    url = f"postgresql://postgres@127.0.0.1:5432/{args.db}?sslmode=disable"
    data_dir = tempfile.mkdtemp(prefix="dbward-peers-")
    chosen = servers(args, url, data_dir)
    # The servers take turns, round after round: a machine whose load drifts moves them
    # together, and each ratio is taken within a round (then its median over rounds).
    rounds: dict[str, list[dict]] = {s.name: [] for s in chosen}
    for i in range(args.rounds):
        for s in chosen:
            r = measure(s, args)
            rounds[s.name].append(r)
            print(f"round {i + 1} {s.name}: {json.dumps(r)}", file=sys.stderr, flush=True)
    ref = "server-postgres 0.6.2"
    rows = [
        ("sequential p50 (ms)", lambda r: r["p50_ms"]),
        ("sequential p99 (ms)", lambda r: r["p99_ms"]),
        ("server CPU per call (us)", lambda r: r["server_us"]),
        ("PostgreSQL CPU per call (us)", lambda r: r["pg_us"]),
        ("client CPU per call (us)", lambda r: r["client_us"]),
        ("8 stdio sessions (calls/s)", lambda r: r["stdio8"]["calls_s"]),
        ("8 stdio sessions p99 (ms)", lambda r: r["stdio8"]["p99_ms"]),
        ("HTTP 8 clients (calls/s)", lambda r: r.get("http8", {}).get("calls_s")),
        ("HTTP 32 clients (calls/s)", lambda r: r.get("http32", {}).get("calls_s")),
        ("cold start to first result (ms)", lambda r: r["cold_ms"]),
    ]

    def ratio(get, other: str) -> str:
        """Median over rounds of dbward's figure over `other`'s in the same round, and
        the range."""
        if "dbward" not in rounds or other not in rounds:
            return "-"
        each = [get(a) / get(b) for a, b in zip(rounds["dbward"], rounds[other])
                if get(a) is not None and get(b)]
        if not each:
            return "-"
        if len(each) == 1:
            return f"{each[0]:.2f}x"
        return f"{statistics.median(each):.2f}x ({min(each):.2f}-{max(each):.2f})"

    names = list(rounds)
    print(f"medians of {args.rounds} rounds of {args.seconds:g} s per measurement; ratios: "
          "median of the per-round ratios (range)")
    print("| measured in one run | " + " | ".join(names) + " | dbward / reference | dbward / dbhub |")
    print("|---" * (len(names) + 3) + "|")
    for label, get in rows:
        cells = []
        for n in names:
            values = [get(r) for r in rounds[n] if get(r) is not None]
            cells.append(f"{statistics.median(values):,.1f}" if values else "-")
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio(get, ref)} | {ratio(get, 'dbhub')} |")


if __name__ == "__main__":
    main()
