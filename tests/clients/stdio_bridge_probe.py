#!/usr/bin/env python3
"""Drive `exai stdio` with the official MCP Python SDK's stdio client.

Usage: stdio_bridge_probe.py <exai binary> <daemon ws url>

Starts `<exai> stdio --url <url>` through ``mcp.client.stdio.stdio_client``, then runs
initialize -> tools/list -> tools/call version (three concurrent calls) and prints
``BRIDGE OK`` on success. Exits 1 on any failure (with the reason on stderr).
"""

from __future__ import annotations

import asyncio
import sys


async def main(exai: str, url: str) -> int:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=exai, args=["stdio", "--url", url])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            if init.capabilities.tools is None:
                print("no tools capability in the forwarded initialize result", file=sys.stderr)
                return 1
            tools = await session.list_tools()
            names = {t.name for t in tools.tools}
            if "version" not in names:
                print(f"version tool missing from {sorted(names)}", file=sys.stderr)
                return 1
            results = await asyncio.gather(*(session.call_tool("version", {}) for _ in range(3)))
            for r in results:
                if r.isError or "exai" not in r.content[0].text:
                    print(f"bad result: {r}", file=sys.stderr)
                    return 1
    print("BRIDGE OK")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), timeout=60)))
