"""The official Python MCP SDK with an OAuth access token: run by crates/dbward/tests/oauth.rs,
which plays the identity provider, signs the token and starts dbward. Prints what it saw.
Environment: DBWARD_URL (the /mcp endpoint), DBWARD_ACCESS_TOKEN.
"""

import asyncio
import os

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    url = os.environ["DBWARD_URL"]
    token = os.environ["DBWARD_ACCESS_TOKEN"]
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with streamable_http_client(url, http_client=client) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = sorted(t.name for t in (await session.list_tools()).tools)
            result = await session.call_tool("execute_query", {"query": "SELECT count(*) FROM servers"})
            assert not result.is_error, result
            print(f"tools {tools}")
            print(f"rows {result.structured_content['rows']}")


asyncio.run(main())
