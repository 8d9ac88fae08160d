"""The Python MCP SDK's server (PyPI `mcp` 2.x, `MCPServer`, once `FastMCP`), as the
peer `cargo bench --bench mcp` measures beside gattway: one `ble_read` tool answering
what gattway answers for the simulated heart-rate monitor's body sensor location, so
the same rmcp client makes the same calls. Run on stdio by the benchmark.
"""

from mcp.server.mcpserver import MCPServer

server = MCPServer("python-reference")


@server.tool()
def ble_read(device: str, service: str, characteristic: str) -> dict:
    """Read a characteristic (a fixed answer: no radio behind it)."""
    return {
        "device": device,
        "service": {"uuid": "0000180d-0000-1000-8000-00805f9b34fb", "short": service, "name": "Heart Rate"},
        "characteristic": {
            "uuid": "00002a38-0000-1000-8000-00805f9b34fb",
            "short": characteristic,
            "name": "Body Sensor Location",
        },
        "hex": "01",
        "decoded": "chest",
        "display": "chest",
    }


@server.tool()
def ble_connect(device: str) -> dict:
    """Connect (nothing to do: there is no radio)."""
    return {"id": device, "state": "connected"}


if __name__ == "__main__":
    server.run()
