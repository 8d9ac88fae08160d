"""Decodes BTHome service data with Home Assistant's own decoder (bthome-ble).

Reads hex payloads, one a line, on stdin (an encrypted one followed by its key and
the device's address); prints one JSON object a line: each
reading's key and value as Home Assistant gives them (timestamps as Unix seconds,
events as their type). tests/adverts_reference.rs compares gattway's decoder with it.
"""
import json
import sys
import time
from datetime import datetime

from bleak.backends.device import BLEDevice
from bthome_ble import BTHomeBluetoothDeviceData
from habluetooth import BluetoothServiceInfoBleak

UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
ADDRESS = "AA:BB:CC:DD:EE:FF"

for line in sys.stdin:
    fields = line.split()
    payload = bytes.fromhex(fields[0])
    key = bytes.fromhex(fields[1]) if len(fields) > 1 else None
    address = fields[2] if len(fields) > 2 else ADDRESS
    info = BluetoothServiceInfoBleak(
        name="ref", address=address, rssi=-60, manufacturer_data={},
        service_data={UUID: payload}, service_uuids=[UUID], source="local",
        device=BLEDevice(address, "ref", {}), advertisement=None, connectable=False,
        time=time.monotonic(), tx_power=None,
    )
    # A fresh parser each time: it skips a packet id it has already seen.
    update = BTHomeBluetoothDeviceData(bindkey=key).update(info)
    values = {}
    for key, v in update.entity_values.items():
        if key.key != "signal_strength":
            value = v.native_value
            values[key.key] = int(value.timestamp()) if isinstance(value, datetime) else value
    for key, v in update.binary_entity_values.items():
        values[key.key] = v.native_value
    for key, v in update.events.items():
        values[key.key] = v.event_type
    print(json.dumps(values), flush=True)
