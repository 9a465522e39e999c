"""What each server's answer costs the client: the official Python MCP SDK's own CPU per
`tools/call`, with the server taken out of the measurement.

Each server (dbward and the peers of bench/peers.py) is asked the same point query once
over a bare JSON-RPC pipe, and its answers are recorded (initialize, tools/list, the
tools/call result). A replayer (this file with --replay) then plays one server's recorded
answers back, the same bytes for every call with only the id changed, so the client's CPU
per call depends on nothing but the answer's shape: its size, its structuredContent, the
outputSchema the SDK validates it against. Variants of dbward's answer (without the
outputSchema in tools/list; without structuredContent and _meta) tell those parts apart.

The client and the replayer are pinned to one CPU (the client's CPU alone is counted, from
the process's own clock), and the variants take turns within each round, so a noisy
machine moves them together: figures are the median per call over the rounds and the
median of the per-round differences to the reference server's answer.

Run by bench/answer_cost.sh. Usage (as that script calls it):
  answer_cost.py --dbward BIN --db NAME --peers DIR [--rounds N] [--calls N]
"""

import argparse
import asyncio
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

POINT = "SELECT hostname, os, status FROM servers WHERE id = {}"


def replay(path: str) -> None:
    """The replayer: answers from the recording at `path`, one line per message."""
    with open(path) as f:
        rec = json.load(f)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        msg = json.loads(line)
        if "id" not in msg or "method" not in msg:
            continue
        method = msg["method"]
        if method == "initialize":
            result = dict(rec["initialize"], protocolVersion=msg["params"]["protocolVersion"])
        elif method == "tools/list":
            result = rec["tools"]
        elif method == "tools/call":
            result = rec["call"]
        else:
            out.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "error": {
                "code": -32601, "message": "not recorded"}}).encode() + b"\n")
            out.flush()
            continue
        body = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result},
                          separators=(",", ":"))
        out.write(body.encode() + b"\n")
        out.flush()


def record(cmd: list[str], env: dict, call: dict) -> dict:
    """One server's answers to initialize, tools/list and `call`, over a bare pipe."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=env)

    def ask(i: int, method: str, params: dict | None = None) -> dict:
        m = {"jsonrpc": "2.0", "id": i, "method": method}
        if params is not None:
            m["params"] = params
        p.stdin.write((json.dumps(m) + "\n").encode())
        p.stdin.flush()
        while True:
            answer = json.loads(p.stdout.readline())
            if answer.get("id") == i:
                return answer["result"]

    init = ask(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "answer-cost", "version": "1"}})
    p.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    tools = ask(2, "tools/list")
    result = ask(3, "tools/call", call)
    p.stdin.close()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:  # a peer that does not end with its stdin
        p.terminate()
        p.wait(timeout=5)
    assert not result.get("isError"), f"{cmd[0]}: {result}"
    return {"initialize": init, "tools": tools, "call": result, "tool": call["name"],
            "arguments": call["arguments"]}


async def client_cpu(path: str, rec: dict, calls: int) -> float:
    """The client's own CPU per call (us) against the replayer of `path`."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable,
                                   args=[os.path.abspath(__file__), "--replay", path],
                                   env={"PATH": os.environ["PATH"]})
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            await session.list_tools()
            for _ in range(100):
                r = await session.call_tool(rec["tool"], rec["arguments"])
                assert not r.is_error, r
            c0 = time.process_time()
            for _ in range(calls):
                await session.call_tool(rec["tool"], rec["arguments"])
            return (time.process_time() - c0) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replay")
    ap.add_argument("--dbward")
    ap.add_argument("--db")
    ap.add_argument("--peers")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    if args.replay:
        replay(args.replay)
        return
    url = f"postgresql://postgres@127.0.0.1:5432/{args.db}?sslmode=disable"
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    work = tempfile.mkdtemp(prefix="dbward-answer-cost-")
    dbward_env = dict(env, DBWARD_DATABASE_URL=url, DBWARD_DATA_DIR=work, DBWARD_LOG="warn")
    peers = args.peers
    recordings = {
        "server-postgres 0.6.2": record(
            ["node", f"{peers}/node_modules/@modelcontextprotocol/server-postgres/dist/index.js", url],
            env, {"name": "query", "arguments": {"sql": POINT.format(7)}}),
        "dbhub": record(
            ["node", f"{peers}/node_modules/@bytebase/dbhub/dist/index.js", "--transport",
             "stdio", "--dsn", url],
            env, {"name": "execute_sql", "arguments": {"sql": POINT.format(7)}}),
        "dbward": record(
            [args.dbward, "serve"], dbward_env,
            {"name": "execute_query",
             "arguments": {"query": POINT.format("$1"), "params": [7]}}),
    }
    # dbward's answer without the parts the SDK does extra work for.
    base = recordings["dbward"]
    no_schema = copy.deepcopy(base)
    for t in no_schema["tools"]["tools"]:
        t.pop("outputSchema", None)
    recordings["dbward, no outputSchema"] = no_schema
    bare = copy.deepcopy(no_schema)
    bare["call"].pop("structuredContent", None)
    bare["call"].pop("_meta", None)
    for block in bare["call"]["content"]:
        block.pop("_meta", None)
    recordings["dbward, text only"] = bare
    paths = {}
    for i, (name, rec) in enumerate(recordings.items()):
        paths[name] = os.path.join(work, f"answer-{i}.json")
        with open(paths[name], "w") as f:
            json.dump(rec, f)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cpu: dict[str, list[float]] = {n: [] for n in recordings}
    for _ in range(args.rounds):
        for name, rec in recordings.items():
            cpu[name].append(asyncio.run(client_cpu(paths[name], rec, args.calls)))
    ref = "server-postgres 0.6.2"
    print(f"client (Python SDK) CPU per call on each recorded answer, {args.rounds} rounds "
          f"of {args.calls} calls, one CPU")
    print("| answer | bytes | client CPU per call (us, median) | minus the reference's "
          "(us, median of rounds) | ratio |")
    print("|---|---|---|---|---|")
    for name, values in cpu.items():
        size = len(json.dumps(recordings[name]["call"], separators=(",", ":")))
        diffs = [v - r for v, r in zip(values, cpu[ref])]
        med = statistics.median(values)
        print(f"| {name} | {size} | {med:,.0f} | {statistics.median(diffs):+,.0f} | "
              f"{med / statistics.median(cpu[ref]):.2f}x |")


if __name__ == "__main__":
    main()
