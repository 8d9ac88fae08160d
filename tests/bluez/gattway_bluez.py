'''A BlueZ stand-in for gattway's native-backend tests.

python-dbusmock's `bluez5` template gives the adapter and devices; this template adds
what a BLE client needs from BlueZ: connecting resolves services, and each device has
a GATT tree of org.bluez.GattService1 / GattCharacteristic1 / GattDescriptor1 objects
with ReadValue, WriteValue, StartNotify and StopNotify; notifications are
PropertiesChanged signals on `Value`, as BlueZ sends them.

Run: python3 -m dbusmock --system --template tests/bluez/gattway_bluez.py
(with DBUS_SYSTEM_BUS_ADDRESS pointing at a private bus).

Test controls, on /org/bluez (interface org.bluez.Mock):
- Notify(o char_path, ay value): the device notifies a value (if notifying).
- DropConnection(o device_path): the link drops, as when a device walks away.
- DropSilently(o device_path): the link drops and BlueZ never says so (a known
  BlueZ failure): only the next operation finds out.
- SetPowered(b): the adapter is powered on or off.
'''

import random
import xml.etree.ElementTree as ElementTree

import dbus
from gi.repository import GLib

from dbusmock import OBJECT_MANAGER_IFACE, mockobject
from dbusmock.templates import bluez5
from dbusmock.templates.bluez5 import BLUEZ_MOCK_IFACE, DEVICE_IFACE, ADAPTER_IFACE

# What dbusmock reads from a template.
BUS_NAME = 'org.bluez'
MAIN_OBJ = '/'
MAIN_IFACE = BLUEZ_MOCK_IFACE
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True
SERVICE_IFACE = 'org.bluez.GattService1'
CHAR_IFACE = 'org.bluez.GattCharacteristic1'
DESC_IFACE = 'org.bluez.GattDescriptor1'


def uuid16(short):
    return f'0000{short:04x}-0000-1000-8000-00805f9b34fb'


NUS = '6e400001-b5a3-f393-e0a9-e50e24dcca9e'
NUS_RX = '6e400002-b5a3-f393-e0a9-e50e24dcca9e'
NUS_TX = '6e400003-b5a3-f393-e0a9-e50e24dcca9e'

# address, name, advertised services, [(service uuid, [(char uuid, flags, value, [descriptor uuids])])]
DEVICES = [
    # The same ids, names and GATT layout as the simulator's heart-rate monitor and
    # UART, so one contract test runs on both backends (tests/backend_contract.rs).
    ('C0:FF:EE:00:00:01', 'Gattway HRM', [uuid16(0x180D)], [
        (uuid16(0x180D), [
            (uuid16(0x2A37), ['notify'], [0x00, 72], [uuid16(0x2902)]),
            (uuid16(0x2A38), ['read'], [0x01], []),
        ]),
        (uuid16(0x180F), [
            (uuid16(0x2A19), ['read', 'notify'], [85], [uuid16(0x2902)]),
        ]),
    ]),
    ('C0:FF:EE:00:00:04', 'Gattway UART', [NUS], [
        (NUS, [
            (NUS_RX, ['write', 'write-without-response'], [], []),
            (NUS_TX, ['notify'], [], [uuid16(0x2902)]),
        ]),
    ]),
]


def emit_changed(obj, iface, props):
    obj.EmitSignal(dbus.PROPERTIES_IFACE, 'PropertiesChanged', 'sa{sv}as', [iface, props, []])


def set_link(device, up):
    device.connected = up
    for name in ('Connected', 'ServicesResolved'):
        device.props[DEVICE_IFACE][name] = dbus.Boolean(up, variant_level=1)
    emit_changed(device, DEVICE_IFACE, {
        'Connected': dbus.Boolean(up, variant_level=1),
        'ServicesResolved': dbus.Boolean(up, variant_level=1),
    })
    if not up:
        for path, obj in list(mockobject.objects.items()):
            if path.startswith(device.__dbus_object_path__ + '/') and CHAR_IFACE in obj.props:
                obj.props[CHAR_IFACE]['Notifying'] = dbus.Boolean(False, variant_level=1)


def drop_silently(device):
    device.connected = False
    for name in ('Connected', 'ServicesResolved'):
        device.props[DEVICE_IFACE][name] = dbus.Boolean(False, variant_level=1)


def Connect(device):
    if device.connected:
        raise dbus.exceptions.DBusException('Already Connected', name='org.bluez.Error.AlreadyConnected')
    if not device.in_range:
        raise dbus.exceptions.DBusException('Page Timeout', name='org.bluez.Error.Failed')
    set_link(device, True)


def Disconnect(device):
    if not device.connected:
        raise dbus.exceptions.DBusException('Not Connected', name='org.bluez.Error.NotConnected')
    set_link(device, False)


def owning_device(obj):
    path = obj.__dbus_object_path__
    return mockobject.objects['/'.join(path.split('/')[:5])]


def check_connected(obj):
    if not owning_device(obj).connected:
        raise dbus.exceptions.DBusException('Not connected', name='org.bluez.Error.NotConnected')


def CharReadValue(char, _options):
    check_connected(char)
    if 'read' not in char.props[CHAR_IFACE]['Flags']:
        raise dbus.exceptions.DBusException('Read not permitted', name='org.bluez.Error.NotPermitted')
    return dbus.Array(char.props[CHAR_IFACE]['Value'], signature='y')


def CharWriteValue(char, value, _options):
    check_connected(char)
    flags = char.props[CHAR_IFACE]['Flags']
    if 'write' not in flags and 'write-without-response' not in flags:
        raise dbus.exceptions.DBusException('Write not permitted', name='org.bluez.Error.NotPermitted')
    char.props[CHAR_IFACE]['Value'] = dbus.Array(value, signature='y', variant_level=1)
    # The UART echoes what it is sent on its TX characteristic.
    if str(char.props[CHAR_IFACE]['UUID']) == NUS_RX:
        tx = char.__dbus_object_path__.rsplit('/', 1)[0] + '/char0003'
        notify(mockobject.objects[tx], value)


def notify(char, value):
    char.props[CHAR_IFACE]['Value'] = dbus.Array(value, signature='y', variant_level=1)
    if char.props[CHAR_IFACE]['Notifying']:
        emit_changed(char, CHAR_IFACE, {'Value': dbus.Array(value, signature='y', variant_level=1)})


def StartNotify(char):
    check_connected(char)
    char.props[CHAR_IFACE]['Notifying'] = dbus.Boolean(True, variant_level=1)
    emit_changed(char, CHAR_IFACE, {'Notifying': dbus.Boolean(True, variant_level=1)})


def StopNotify(char):
    char.props[CHAR_IFACE]['Notifying'] = dbus.Boolean(False, variant_level=1)
    emit_changed(char, CHAR_IFACE, {'Notifying': dbus.Boolean(False, variant_level=1)})


def DescReadValue(desc, _options):
    check_connected(desc)
    return dbus.Array(desc.props[DESC_IFACE]['Value'], signature='y')


def DescWriteValue(desc, value, _options):
    check_connected(desc)
    desc.props[DESC_IFACE]['Value'] = dbus.Array(value, signature='y', variant_level=1)


def add_object(path, iface, props, methods):
    mockobject.objects['/'].AddObject(path, iface, props, methods)
    mockobject.objects['/'].EmitSignal(OBJECT_MANAGER_IFACE, 'InterfacesAdded', 'oa{sa{sv}}', [
        dbus.ObjectPath(path), {iface: props}])
    return mockobject.objects[path]


def add_gatt(device_path, services):
    handle = 1
    for s_index, (s_uuid, chars) in enumerate(services):
        s_path = f'{device_path}/service{s_index * 16 + 1:04x}'
        add_object(s_path, SERVICE_IFACE, {
            'UUID': dbus.String(s_uuid, variant_level=1),
            'Primary': dbus.Boolean(True, variant_level=1),
            'Device': dbus.ObjectPath(device_path, variant_level=1),
        }, [])
        for c_index, (c_uuid, flags, value, descs) in enumerate(chars):
            handle += 1
            c_path = f'{s_path}/char{c_index * 2 + 1:04x}'
            add_object(c_path, CHAR_IFACE, {
                'UUID': dbus.String(c_uuid, variant_level=1),
                'Service': dbus.ObjectPath(s_path, variant_level=1),
                'Flags': dbus.Array(flags, signature='s', variant_level=1),
                'Value': dbus.Array(value, signature='y', variant_level=1),
                'Notifying': dbus.Boolean(False, variant_level=1),
                'MTU': dbus.UInt16(185, variant_level=1),
            }, [
                ('ReadValue', 'a{sv}', 'ay', CharReadValue),
                ('WriteValue', 'aya{sv}', '', CharWriteValue),
                ('StartNotify', '', '', StartNotify),
                ('StopNotify', '', '', StopNotify),
            ])
            for d_index, d_uuid in enumerate(descs):
                add_object(f'{c_path}/desc{d_index + 1:04x}', DESC_IFACE, {
                    'UUID': dbus.String(d_uuid, variant_level=1),
                    'Characteristic': dbus.ObjectPath(c_path, variant_level=1),
                    'Value': dbus.Array([0, 0], signature='y', variant_level=1),
                }, [
                    ('ReadValue', 'a{sv}', 'ay', DescReadValue),
                    ('WriteValue', 'aya{sv}', '', DescWriteValue),
                ])


def advertise():
    '''While the adapter discovers, each device in range is heard every 200 ms:
    BlueZ reports that as an RSSI change.'''
    adapter = mockobject.objects.get('/org/bluez/hci0')
    if adapter is not None and adapter.props[ADAPTER_IFACE]['Discovering']:
        for path, obj in list(mockobject.objects.items()):
            props = obj.props.get(DEVICE_IFACE)
            if props is None or 'RSSI' not in props or not getattr(obj, 'in_range', False):
                continue
            rssi = dbus.Int16(-60 + random.randint(-3, 3), variant_level=1)
            obj.UpdateProperties(DEVICE_IFACE, {'RSSI': rssi})
    return True


def nodes_last():
    '''dbusmock lists an interface that has only properties after the child nodes;
    bluez-async's introspection parser (and BlueZ's own order) wants every
    <interface> before the first <node>. Introspect is wrapped to reorder.'''
    cls = mockobject.DBusMockObject
    original = cls.Introspect

    def Introspect(self, object_path, connection):
        tree = ElementTree.fromstring(original(self, object_path, connection).split('\n', 1)[1])
        for node in [c for c in tree if c.tag == 'node']:
            tree.remove(node)
            tree.append(node)
        return ('<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n'
                '"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n'
                + ElementTree.tostring(tree, encoding='unicode'))

    for attr in dir(original):
        if attr.startswith('_dbus'):
            setattr(Introspect, attr, getattr(original, attr))
    cls.Introspect = Introspect
    table = cls._dbus_class_table[cls.__module__ + '.' + cls.__name__]
    table[dbus.INTROSPECTABLE_IFACE]['Introspect'] = Introspect


def load(mock, parameters):
    nodes_last()
    bluez5.load(mock, parameters)
    # The objects below are made while loading, before dbusmock registers the main
    # object, so it is registered here first.
    mockobject.objects['/'] = mock
    root = mock
    bluez5.AddAdapter(root, 'hci0', 'gattway-test')
    for address, name, uuids, services in DEVICES:
        path = bluez5.AddDevice(root, 'hci0', address, name)
        device = mockobject.objects[path]
        device.in_range = True
        device.props[DEVICE_IFACE]['UUIDs'] = dbus.Array(uuids, signature='s', variant_level=1)
        device.props[DEVICE_IFACE]['RSSI'] = dbus.Int16(-60, variant_level=1)
        device.AddMethods(DEVICE_IFACE, [
            ('Connect', '', '', Connect),
            ('Disconnect', '', '', Disconnect),
        ])
        add_gatt(path, services)
    # A device BlueZ remembers from an earlier session but does not hear now: no RSSI.
    stale = mockobject.objects[bluez5.AddDevice(root, 'hci0', 'C0:FF:EE:00:10:99', 'Old Tag')]
    stale.in_range = False
    del stale.props[DEVICE_IFACE]['RSSI']
    GLib.timeout_add(200, advertise)
    bluez = mockobject.objects['/org/bluez']
    bluez.AddMethods(BLUEZ_MOCK_IFACE, [
        ('Notify', 'oay', '', lambda _self, path, value: notify(mockobject.objects[path], value)),
        ('DropConnection', 'o', '', lambda _self, path: set_link(mockobject.objects[path], False)),
        ('DropSilently', 'o', '', lambda _self, path: drop_silently(mockobject.objects[path])),
        ('SetInRange', 'ob', '', lambda _self, path, up: setattr(mockobject.objects[path], 'in_range', bool(up))),
        ('SetPowered', 'b', '', lambda _self, up: mockobject.objects['/org/bluez/hci0'].UpdateProperties(
            ADAPTER_IFACE, {'Powered': dbus.Boolean(up, variant_level=1)})),
    ])
