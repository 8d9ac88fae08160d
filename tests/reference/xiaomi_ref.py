"""Decodes Xiaomi MiBeacons (service data 0xFE95) with Home Assistant's own decoder
(xiaomi-ble).

Reads lines `HEX ADDRESS [BINDKEY]` on stdin; prints one JSON object a line: each
reading's key and value as Home Assistant gives them. tests/adverts_reference.rs
compares gattway's decoder with it.
"""
import json
import sys
import time

from bleak.backends.device import BLEDevice
from habluetooth import BluetoothServiceInfoBleak
from xiaomi_ble import XiaomiBluetoothDeviceData

UUID = "0000fe95-0000-1000-8000-00805f9b34fb"

for line in sys.stdin:
    fields = line.split()
    payload = bytes.fromhex(fields[0])
    address = fields[1]
    key = bytes.fromhex(fields[2]) if len(fields) > 2 else None
    info = BluetoothServiceInfoBleak(
        name="ref", address=address, rssi=-60, manufacturer_data={},
        service_data={UUID: payload}, service_uuids=[UUID], source="local",
        device=BLEDevice(address, "ref", {}), advertisement=None, connectable=False,
        time=time.monotonic(), tx_power=None,
    )
    update = XiaomiBluetoothDeviceData(bindkey=key).update(info)
    values = {}
    for k, v in update.entity_values.items():
        if k.key != "signal_strength" and v.native_value is not None:
            values[k.key] = v.native_value
    print(json.dumps(values), flush=True)
