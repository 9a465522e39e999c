"""Interoperability check with a client nobody on the team wrote: the official Python MCP
SDK lists dbward's tools and calls execute_query over stdio and over streamable HTTP (with a
bearer token), asserting on the rows. Run by .ci/run: python mcp_client.py /path/to/dbward
"""

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

EXPECTED_TOOLS = {
    "list_connections", "connect", "close_connection", "list_tables", "describe_table",
    "read_table", "execute_query", "get_table_stats", "search_tables", "explain_query",
    "security_posture",
}
QUERY = "SELECT name FROM departments ORDER BY id LIMIT 3"


async def exercise(session: ClientSession, how: str) -> None:
    await session.initialize()
    tools = {t.name for t in (await session.list_tools()).tools}
    assert EXPECTED_TOOLS <= tools, f"{how}: missing tools {EXPECTED_TOOLS - tools}"
    result = await session.call_tool("execute_query", {"query": QUERY})
    assert not result.is_error, f"{how}: {result}"
    rows = result.structured_content["rows"]
    assert len(rows) == 3 and all(isinstance(r[0], str) and r[0] for r in rows), rows
    refused = await session.call_tool("execute_query", {"query": "DROP TABLE servers"})
    assert refused.is_error, f"{how}: a DROP must be refused"
    print(f"{how}: {len(tools)} tools, rows {[r[0] for r in rows]}, DROP refused")


async def over_stdio(binary: str, data_dir: str) -> None:
    env = {"DBWARD_DATA_DIR": data_dir, "DBWARD_LOG": "warn", "PATH": os.environ.get("PATH", "")}
    params = StdioServerParameters(command=binary, args=["serve"], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await exercise(session, "stdio")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def over_http(binary: str, data_dir: str) -> None:
    port = free_port()
    token = "interop-" + os.urandom(16).hex()
    env = dict(os.environ, DBWARD_DATA_DIR=data_dir, DBWARD_HTTP_TOKEN=token, DBWARD_LOG="warn")
    env.pop("DBWARD_DATABASE_URL", None)
    proc = subprocess.Popen(
        [binary, "serve", "--transport", "http", "--listen", f"127.0.0.1:{port}"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, "dbward serve exited early"
                assert time.monotonic() < deadline, "dbward serve did not start listening"
                time.sleep(0.2)
        # Without the token: 401.
        async with httpx2.AsyncClient() as plain:
            r = await plain.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                 headers={"Accept": "application/json, text/event-stream"})
            assert r.status_code == 401, r.status_code
        client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        async with streamable_http_client(url, http_client=client) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await exercise(session, "http")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def main() -> None:
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        await over_stdio(binary, d)
        await over_http(binary, d)
    print("interop: 2 passed, 0 failed")


if __name__ == "__main__":
    asyncio.run(main())
