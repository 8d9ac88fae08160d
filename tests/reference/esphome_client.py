"""Home Assistant's ESPHome client (aioesphomeapi) driving a Bluetooth proxy.

Usage: esphome_client.py HOST PORT DEVICE_MAC [NOISE_PSK]

Connects as Home Assistant does, checks the proxy's feature flags, collects raw
advertisements for a while, connects to DEVICE_MAC, lists its GATT services, reads
every readable characteristic, subscribes to the first notifying one and waits for
a notification, then disconnects. Prints one JSON object with what it saw, or {"error": TYPE} when the client fails.
"""

import asyncio
import json
import sys

from aioesphomeapi import APIClient
from aioesphomeapi.model import BluetoothProxyFeature


def mac_to_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


async def main() -> None:
    host, port, mac = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    psk = sys.argv[4] if len(sys.argv) > 4 else None
    client = APIClient(host, port, None, noise_psk=psk, client_info="gattway-test")
    await client.connect(login=True)
    info = await client.device_info()
    flags = info.bluetooth_proxy_feature_flags_compat(client.api_version)
    out = {
        "name": info.name,
        "mac": info.mac_address,
        "esphome_version": info.esphome_version,
        "active": bool(flags & BluetoothProxyFeature.ACTIVE_CONNECTIONS),
        "raw": bool(flags & BluetoothProxyFeature.RAW_ADVERTISEMENTS),
        "caching": bool(flags & BluetoothProxyFeature.REMOTE_CACHING),
    }

    heard: dict[str, dict] = {}
    got_target = asyncio.Event()

    def on_raw(resp) -> None:
        for adv in resp.advertisements:
            addr = ":".join(f"{(adv.address >> (8 * i)) & 0xFF:02X}" for i in reversed(range(6)))
            heard[addr] = {"rssi": adv.rssi, "data": bytes(adv.data).hex()}
            if adv.address == mac_to_int(mac):
                got_target.set()

    unsub = client.subscribe_bluetooth_le_raw_advertisements(on_raw)
    await asyncio.wait_for(got_target.wait(), 20)
    unsub()
    out["heard"] = heard

    slots = []
    client.subscribe_bluetooth_connections_free(lambda free, limit, allocated: slots.append([free, limit]))

    address = mac_to_int(mac)
    connected = asyncio.Event()
    states = []

    def on_state(is_connected: bool, mtu: int, error: int) -> None:
        states.append([is_connected, mtu, error])
        if is_connected:
            connected.set()

    await client.bluetooth_device_connect(
        address,
        on_state,
        timeout=20,
        feature_flags=flags,
        has_cache=False,
        address_type=0,
    )
    await asyncio.wait_for(connected.wait(), 20)
    services = await client.bluetooth_gatt_get_services(address)
    out["services"] = []
    reads = {}
    notify_handle = None
    for s in services.services:
        chars = []
        for c in s.characteristics:
            chars.append({"uuid": c.uuid, "handle": c.handle, "properties": c.properties})
            if c.properties & 0x02:
                reads[c.uuid] = (await client.bluetooth_gatt_read(address, c.handle, timeout=10)).hex()
            if c.properties & 0x10 and notify_handle is None:
                notify_handle = c.handle
        out["services"].append({"uuid": s.uuid, "characteristics": chars})
    out["reads"] = reads

    if notify_handle is not None:
        got = asyncio.get_running_loop().create_future()

        def on_notify(handle: int, data: bytearray) -> None:
            if not got.done():
                got.set_result(bytes(data).hex())

        stop, _remove = await client.bluetooth_gatt_start_notify(address, notify_handle, on_notify)
        out["notification"] = await asyncio.wait_for(got, 20)
        await stop()

    await client.bluetooth_device_disconnect(address)
    out["states"] = states
    out["slots"] = slots
    await client.disconnect()
    print(json.dumps(out))


try:
    asyncio.run(main())
except Exception as e:  # the test compares the error's type, as HA shows it
    print(json.dumps({"error": type(e).__name__, "detail": str(e)}))
