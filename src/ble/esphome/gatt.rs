//! A device's GATT tree as a proxy lists it, and the handles behind it: the proxy
//! names attributes by handle, the gateway by UUID.

use std::collections::HashMap;

use super::api::{join_uuid, proto::BluetoothGattService};
use crate::ble::{BleError, BleResult, CharProps, Characteristic, Descriptor, DeviceId, Service, Uuid};

#[derive(Default)]
pub(super) struct RemoteGatt {
    pub services: Vec<Service>,
    characteristics: HashMap<(Uuid, Uuid), u32>,
    descriptors: HashMap<(Uuid, Uuid, Uuid), u32>,
    values: HashMap<u32, (Uuid, Uuid)>,
}

impl RemoteGatt {
    pub fn from_listing(listing: &[BluetoothGattService]) -> RemoteGatt {
        let mut gatt = RemoteGatt::default();
        for s in listing {
            let service = join_uuid(&s.uuid, s.short_uuid);
            let mut characteristics = Vec::with_capacity(s.characteristics.len());
            for c in &s.characteristics {
                let uuid = join_uuid(&c.uuid, c.short_uuid);
                gatt.characteristics.insert((service, uuid), c.handle);
                gatt.values.insert(c.handle, (service, uuid));
                let mut descriptors = Vec::with_capacity(c.descriptors.len());
                for d in &c.descriptors {
                    let du = join_uuid(&d.uuid, d.short_uuid);
                    gatt.descriptors.insert((service, uuid, du), d.handle);
                    descriptors.push(Descriptor { uuid: du });
                }
                characteristics.push(Characteristic {
                    uuid,
                    service,
                    props: CharProps::from_bits(c.properties as u8),
                    descriptors,
                    max_len: None,
                });
            }
            gatt.services.push(Service {
                uuid: service,
                primary: true,
                characteristics,
            });
        }
        gatt
    }

    pub fn characteristic(&self, service: Uuid, characteristic: Uuid) -> BleResult<u32> {
        if let Some(h) = self.characteristics.get(&(service, characteristic)) {
            return Ok(*h);
        }
        if self.services.iter().any(|s| s.uuid == service) {
            Err(BleError::CharacteristicNotFound {
                service,
                characteristic,
            })
        } else {
            Err(BleError::ServiceNotFound(service))
        }
    }

    pub fn descriptor(&self, service: Uuid, characteristic: Uuid, descriptor: Uuid) -> BleResult<u32> {
        self.characteristic(service, characteristic)?;
        self.descriptors
            .get(&(service, characteristic, descriptor))
            .copied()
            .ok_or(BleError::DescriptorNotFound {
                characteristic,
                descriptor,
            })
    }

    /// What a notification's handle names.
    pub fn value(&self, handle: u32) -> Option<(Uuid, Uuid)> {
        self.values.get(&handle).copied()
    }
}

/// The error a proxy's `BluetoothGattErrorResponse` means, for the gateway.
pub(super) fn gatt_error(
    id: &DeviceId,
    service: Uuid,
    characteristic: Uuid,
    operation: &'static str,
    code: i32,
) -> BleError {
    match code {
        0x02 | 0x03 | 0x05 | 0x08 | 0x0f => BleError::NotPermitted {
            characteristic,
            operation,
        },
        0x01 | 0x0a => BleError::CharacteristicNotFound {
            service,
            characteristic,
        },
        _ => BleError::Other(format!("{operation} on {id} failed: GATT error {code:#04x}")),
    }
}
