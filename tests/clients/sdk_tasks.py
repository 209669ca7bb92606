"""MCP Tasks with the official Python SDK (mcp 1.30) over Streamable HTTP, driven by
tests/integration/ai/tasks.rs.

  start: call a tool as a task (session.experimental.call_tool_as_task) and leave at once;
         prints {"taskId": ..., "status": ...}.
  read:  a new session polls session.experimental.get_task until the task is terminal, then
         reads get_task_result(CallToolResult); prints {"status": ..., "result": ...}.

Usage: sdk_tasks.py URL start TOOL ARGS_JSON TTL_MS
       sdk_tasks.py URL read TASK_ID
Exit code 0 on success; errors go to stderr.
"""

import asyncio
import json
import sys

from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client


async def main() -> None:
    url, mode = sys.argv[1], sys.argv[2]
    async with streamablehttp_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            if mode == "start":
                tool, args, ttl = sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5])
                created = await session.experimental.call_tool_as_task(tool, args, ttl=ttl)
                out = {"taskId": created.task.taskId, "status": created.task.status}
            else:
                task_id = sys.argv[3]
                for _ in range(600):
                    task = await session.experimental.get_task(task_id)
                    if task.status in ("completed", "failed", "cancelled"):
                        break
                    await asyncio.sleep((task.pollInterval or 1000) / 1000)
                result = await session.experimental.get_task_result(task_id, types.CallToolResult)
                out = {"status": task.status, "result": result.model_dump(mode="json", by_alias=True)}
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
