"""The Python MCP SDK (PyPI `mcp`) as a client of gattway, for tests/mcp_python.rs.

    mcp_sdk_client.py stdio GATTWAY_BINARY
    mcp_sdk_client.py http URL TOKEN

Drives the device-knowledge flow an assistant would: tools, the CS108's battery
through device_command, profiles as resources, a heart-rate recording and its
summary. Over HTTP it first follows the OAuth discovery the SDK's own OAuth client
does: a request without a token, the WWW-Authenticate pointer, the metadata parsed
with the SDK's RFC 9728 model. Prints one JSON object with what it saw.
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.auth.utils import extract_resource_metadata_from_www_auth
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.auth import ProtectedResourceMetadata

HRM = "C0:FF:EE:00:00:01"
CS108 = "C0:FF:EE:00:01:08"


def structured(result):
    if result.is_error:
        raise RuntimeError("tool error: " + " ".join(c.text for c in result.content if hasattr(c, "text")))
    return result.structured_content


async def drive(session: ClientSession) -> dict:
    await session.initialize()
    seen = {}
    tools = await session.list_tools()
    seen["tools"] = sorted(t.name for t in tools.tools)
    # Arguments as such clients send them: numbers as text.
    structured(await session.call_tool("ble_scan", {"timeout": "0.5"}))
    structured(await session.call_tool("ble_connect", {"device": "cs108"}))
    battery = structured(
        await session.call_tool("device_command", {"device": "CS108", "command": "battery_voltage"})
    )
    seen["battery"] = battery["fields"]["battery"]
    resources = await session.list_resources()
    seen["resources"] = sorted(str(r.uri) for r in resources.resources)
    profile = await session.read_resource("gattway://profiles/cs108")
    seen["profile_head"] = profile.contents[0].text.splitlines()[0]
    structured(await session.call_tool("ble_connect", {"device": HRM}))
    started = structured(
        await session.call_tool(
            "ble_collect_start", {"device": HRM, "characteristics": ["2a37"], "count": "6"}
        )
    )
    for _ in range(400):
        listed = structured(await session.call_tool("ble_collect_list", {}))
        mine = next(c for c in listed["collections"] if c["id"] == started["id"])
        if mine["state"] == "finished":
            break
        await asyncio.sleep(0.05)
    data = await session.read_resource(started["resource"])
    summary = json.loads(data.contents[0].text)
    seen["collection"] = {
        "samples": summary["samples"],
        "series": summary["series"],
        "csv_rows": len(data.contents[1].text.strip().splitlines()) - 1,
    }
    prompts = await session.list_prompts()
    seen["prompts"] = sorted(p.name for p in prompts.prompts)
    return seen


async def over_stdio(binary: str) -> dict:
    env = dict(os.environ, GATTWAY_SIM_TIME_SCALE="20", GATTWAY_LOG_LEVEL="warn")
    env.pop("GATTWAY_CONFIG", None)
    params = StdioServerParameters(command=binary, args=["--backend", "sim", "mcp"], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            return await drive(session)


async def over_http(url: str, token: str) -> dict:
    seen = {}
    async with httpx2.AsyncClient() as plain:
        refused = await plain.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "sdk-test", "version": "1"}}},
            headers={"accept": "application/json, text/event-stream"},
        )
        seen["unauthorised_status"] = refused.status_code
        pointer = extract_resource_metadata_from_www_auth(refused)
        seen["resource_metadata"] = pointer
        metadata = ProtectedResourceMetadata.model_validate((await plain.get(pointer)).json())
        seen["metadata"] = {
            "resource": str(metadata.resource),
            "authorization_servers": [str(a) for a in metadata.authorization_servers],
            "scopes_supported": metadata.scopes_supported,
        }
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with client:
        async with streamable_http_client(url, http_client=client) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                seen.update(await drive(session))
    return seen


def main() -> None:
    mode = sys.argv[1]
    if mode == "stdio":
        seen = asyncio.run(over_stdio(sys.argv[2]))
    else:
        seen = asyncio.run(over_http(sys.argv[2], sys.argv[3]))
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
