//! GATT over the ESPHome API: the client names attributes by handle, gattway by
//! UUID. A device's discovered tree is numbered as a GATT server lays it out (the
//! service, then each characteristic's declaration, value and descriptors), and
//! the numbers map back to what the gateway understands.

use std::collections::HashMap;

use crate::ble::esphome::api::proto::{
    BluetoothGattCharacteristic, BluetoothGattDescriptor, BluetoothGattService,
};
use crate::ble::esphome::api::split_uuid;
use crate::ble::{BleError, Service, Uuid};
use crate::error::ErrorKind;
use crate::gateway::GatewayError;

/// What a handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Attribute {
    Characteristic {
        service: Uuid,
        characteristic: Uuid,
    },
    Descriptor {
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
    },
}

/// The Client Characteristic Configuration descriptor: a client writes it to turn
/// notifications on (bleak-esphome does, after `BluetoothGattNotifyRequest`).
pub(super) const CCCD: Uuid = Uuid::from_u16(0x2902);

#[derive(Default)]
pub(super) struct Handles {
    by_handle: HashMap<u32, Attribute>,
}

impl Handles {
    /// Numbers `services` and returns them as the API lists them.
    pub fn number(services: &[Service]) -> (Handles, Vec<BluetoothGattService>) {
        let mut handles = Handles::default();
        let mut next: u32 = 1;
        let mut listed = Vec::with_capacity(services.len());
        for s in services {
            let service_handle = next;
            next += 1;
            let mut characteristics = Vec::with_capacity(s.characteristics.len());
            for c in &s.characteristics {
                // Declaration, then value: the value's handle names the characteristic.
                let value_handle = next + 1;
                next += 2;
                handles.by_handle.insert(
                    value_handle,
                    Attribute::Characteristic {
                        service: s.uuid,
                        characteristic: c.uuid,
                    },
                );
                let mut descriptors = Vec::with_capacity(c.descriptors.len());
                for d in &c.descriptors {
                    handles.by_handle.insert(
                        next,
                        Attribute::Descriptor {
                            service: s.uuid,
                            characteristic: c.uuid,
                            descriptor: d.uuid,
                        },
                    );
                    descriptors.push(BluetoothGattDescriptor {
                        uuid: split_uuid(d.uuid),
                        handle: next,
                        short_uuid: 0,
                    });
                    next += 1;
                }
                characteristics.push(BluetoothGattCharacteristic {
                    uuid: split_uuid(c.uuid),
                    handle: value_handle,
                    properties: u32::from(c.props.bits()),
                    descriptors,
                    short_uuid: 0,
                });
            }
            listed.push(BluetoothGattService {
                uuid: split_uuid(s.uuid),
                handle: service_handle,
                characteristics,
                short_uuid: 0,
            });
        }
        (handles, listed)
    }

    pub fn get(&self, handle: u32) -> Option<Attribute> {
        self.by_handle.get(&handle).copied()
    }

    /// The (service, characteristic) whose value `handle` is.
    pub fn characteristic(&self, handle: u32) -> Option<(Uuid, Uuid)> {
        match self.get(handle)? {
            Attribute::Characteristic {
                service,
                characteristic,
            } => Some((service, characteristic)),
            Attribute::Descriptor { .. } => None,
        }
    }

    /// The (service, characteristic, descriptor) `handle` is.
    pub fn descriptor(&self, handle: u32) -> Option<(Uuid, Uuid, Uuid)> {
        match self.get(handle)? {
            Attribute::Descriptor {
                service,
                characteristic,
                descriptor,
            } => Some((service, characteristic, descriptor)),
            Attribute::Characteristic { .. } => None,
        }
    }

    /// The value handle of a characteristic (to label its notifications).
    pub fn handle_of(&self, service: Uuid, characteristic: Uuid) -> Option<u32> {
        self.by_handle.iter().find_map(|(h, a)| {
            (*a == Attribute::Characteristic {
                service,
                characteristic,
            })
            .then_some(*h)
        })
    }
}

/// The ATT error an ESPHome proxy reports for a failed operation, by its kind.
pub(super) fn att_error(e: &GatewayError) -> i32 {
    match e.kind() {
        // Read or write not permitted: which, the operation the radio refused says.
        ErrorKind::NotPermitted => match e {
            GatewayError::Ble(BleError::NotPermitted { operation, .. }) if operation.starts_with("read") => {
                0x02
            }
            _ => 0x03,
        },
        ErrorKind::ValueTooLong => 0x0d,
        ErrorKind::ServiceNotFound | ErrorKind::CharacteristicNotFound | ErrorKind::DescriptorNotFound => {
            0x01
        }
        // ESP_GATT_ERROR: what ESPHome reports for everything else.
        _ => 0x85,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ble::esphome::api::join_uuid;
    use crate::ble::{CharProps, Characteristic, Descriptor};

    #[test]
    fn handles_follow_a_gatt_layout_and_map_back() {
        let hr = Uuid::from_u16(0x180d);
        let measurement = Uuid::from_u16(0x2a37);
        let location = Uuid::from_u16(0x2a38);
        let services = vec![Service {
            uuid: hr,
            primary: true,
            characteristics: vec![
                Characteristic {
                    uuid: measurement,
                    service: hr,
                    props: CharProps::NOTIFY,
                    descriptors: vec![Descriptor { uuid: CCCD }],
                    max_len: None,
                },
                Characteristic {
                    uuid: location,
                    service: hr,
                    props: CharProps::READ,
                    descriptors: vec![],
                    max_len: None,
                },
            ],
        }];
        let (handles, listed) = Handles::number(&services);
        assert_eq!(listed[0].handle, 1);
        assert_eq!(listed[0].characteristics[0].handle, 3);
        assert_eq!(listed[0].characteristics[0].descriptors[0].handle, 4);
        assert_eq!(listed[0].characteristics[1].handle, 6);
        assert_eq!(join_uuid(&listed[0].uuid, 0), hr);
        assert_eq!(join_uuid(&[], 0x2a37), measurement);
        assert_eq!(
            handles.get(4),
            Some(Attribute::Descriptor {
                service: hr,
                characteristic: measurement,
                descriptor: CCCD
            })
        );
        assert_eq!(handles.handle_of(hr, location), Some(6));
        assert_eq!(handles.get(5), None, "a declaration is not addressable");
    }
}
