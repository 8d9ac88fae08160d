"""Decodes vendor adverts with Home Assistant's own decoders.

Reads lines `FORMAT HEX` on stdin, FORMAT one of `ruuvi` (manufacturer data of
0x0499, ruuvitag-ble) or `govee` (manufacturer data of 0xEC88 from an H5075,
govee-ble); prints one JSON object a line: each reading's key and value as Home
Assistant gives them. tests/adverts_reference.rs compares gattway's decoders.
"""
import json
import sys
import time

from bleak.backends.device import BLEDevice
from govee_ble import GoveeBluetoothDeviceData
from habluetooth import BluetoothServiceInfoBleak
from ruuvitag_ble import RuuvitagBluetoothDeviceData

ADDRESS = "AA:BB:CC:DD:EE:FF"
FORMATS = {
    "ruuvi": (0x0499, "Ruuvi ABCD", RuuvitagBluetoothDeviceData),
    "govee": (0xEC88, "GVH5075_ABCD", GoveeBluetoothDeviceData),
}

for line in sys.stdin:
    fmt, payload = line.split()
    company, name, parser = FORMATS[fmt]
    info = BluetoothServiceInfoBleak(
        name=name, address=ADDRESS, rssi=-60,
        manufacturer_data={company: bytes.fromhex(payload)},
        service_data={}, service_uuids=[], source="local",
        device=BLEDevice(ADDRESS, name, {}), advertisement=None, connectable=False,
        time=time.monotonic(), tx_power=None,
    )
    update = parser().update(info)
    values = {}
    for key, v in update.entity_values.items():
        if key.key != "signal_strength" and v.native_value is not None:
            values[key.key] = v.native_value
    print(json.dumps(values), flush=True)
