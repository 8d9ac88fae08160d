//! Standard names of the SIG-assigned UUIDs gattway simulates and decodes, so every
//! front end can print "Heart Rate Measurement" next to `2a37`.

use super::Uuid;

/// (16-bit UUID, name) for services, characteristics and descriptors.
const NAMES: &[(u16, &str)] = &[
    // Services
    (0x1800, "Generic Access"),
    (0x1801, "Generic Attribute"),
    (0x180A, "Device Information"),
    (0x180D, "Heart Rate"),
    (0x180F, "Battery Service"),
    (0x181A, "Environmental Sensing"),
    // Characteristics
    (0x2A00, "Device Name"),
    (0x2A01, "Appearance"),
    (0x2A19, "Battery Level"),
    (0x2A23, "System ID"),
    (0x2A24, "Model Number String"),
    (0x2A25, "Serial Number String"),
    (0x2A26, "Firmware Revision String"),
    (0x2A27, "Hardware Revision String"),
    (0x2A28, "Software Revision String"),
    (0x2A29, "Manufacturer Name String"),
    (0x2A37, "Heart Rate Measurement"),
    (0x2A38, "Body Sensor Location"),
    (0x2A39, "Heart Rate Control Point"),
    (0x2A6E, "Temperature"),
    (0x2A6F, "Humidity"),
    // Descriptors
    (0x2900, "Characteristic Extended Properties"),
    (0x2901, "Characteristic User Description"),
    (0x2902, "Client Characteristic Configuration"),
    (0x2904, "Characteristic Presentation Format"),
];

/// Vendor UUIDs with well-known names.
const VENDOR_NAMES: &[(u128, &str)] = &[
    (0x6e400001_b5a3_f393_e0a9_e50e24dcca9e, "Nordic UART Service"),
    (0x6e400002_b5a3_f393_e0a9_e50e24dcca9e, "Nordic UART RX"),
    (0x6e400003_b5a3_f393_e0a9_e50e24dcca9e, "Nordic UART TX"),
];

/// Bluetooth SIG company identifiers seen on common devices.
const COMPANIES: &[(u16, &str)] = &[
    (0x0006, "Microsoft"),
    (0x000D, "Texas Instruments"),
    (0x004C, "Apple"),
    (0x0059, "Nordic Semiconductor"),
    (0x0075, "Samsung"),
    (0x0087, "Garmin"),
    (0x00E0, "Google"),
    (0x0131, "Cypress Semiconductor"),
    (0x0157, "Anhui Huami"),
    (0x02E5, "Espressif"),
];

/// The company a manufacturer-data identifier belongs to, when gattway knows it.
pub fn company_name(id: u16) -> Option<&'static str> {
    COMPANIES.iter().find(|(c, _)| *c == id).map(|(_, n)| *n)
}

/// The standard name of `uuid`, when gattway knows it.
pub fn name_of(uuid: Uuid) -> Option<&'static str> {
    if let Some(short) = uuid.as_u16() {
        return NAMES.iter().find(|(u, _)| *u == short).map(|(_, n)| *n);
    }
    VENDOR_NAMES
        .iter()
        .find(|(u, _)| *u == uuid.as_u128())
        .map(|(_, n)| *n)
}

/// Well-known UUIDs used across the crate.
pub mod well_known {
    use super::Uuid;

    pub const CCCD: Uuid = Uuid::from_u16(0x2902);
    pub const USER_DESCRIPTION: Uuid = Uuid::from_u16(0x2901);
    pub const HEART_RATE_SERVICE: Uuid = Uuid::from_u16(0x180D);
    pub const HEART_RATE_MEASUREMENT: Uuid = Uuid::from_u16(0x2A37);
    pub const BODY_SENSOR_LOCATION: Uuid = Uuid::from_u16(0x2A38);
    pub const BATTERY_SERVICE: Uuid = Uuid::from_u16(0x180F);
    pub const BATTERY_LEVEL: Uuid = Uuid::from_u16(0x2A19);
    pub const DEVICE_INFORMATION: Uuid = Uuid::from_u16(0x180A);
    pub const MANUFACTURER_NAME: Uuid = Uuid::from_u16(0x2A29);
    pub const MODEL_NUMBER: Uuid = Uuid::from_u16(0x2A24);
    pub const SERIAL_NUMBER: Uuid = Uuid::from_u16(0x2A25);
    pub const FIRMWARE_REVISION: Uuid = Uuid::from_u16(0x2A26);
    pub const ENVIRONMENTAL_SENSING: Uuid = Uuid::from_u16(0x181A);
    pub const TEMPERATURE: Uuid = Uuid::from_u16(0x2A6E);
    pub const HUMIDITY: Uuid = Uuid::from_u16(0x2A6F);
    pub const NUS_SERVICE: Uuid = Uuid::from_u128(0x6e400001_b5a3_f393_e0a9_e50e24dcca9e);
    pub const NUS_RX: Uuid = Uuid::from_u128(0x6e400002_b5a3_f393_e0a9_e50e24dcca9e);
    pub const NUS_TX: Uuid = Uuid::from_u128(0x6e400003_b5a3_f393_e0a9_e50e24dcca9e);
    pub const CS108_SERVICE: Uuid = Uuid::from_u16(0x9800);
    pub const CS108_WRITE: Uuid = Uuid::from_u16(0x9900);
    pub const CS108_NOTIFY: Uuid = Uuid::from_u16(0x9901);
}

#[cfg(test)]
mod tests {
    use super::well_known::*;

    #[test]
    fn names_the_simulated_profiles() {
        assert_eq!(HEART_RATE_SERVICE.name(), Some("Heart Rate"));
        assert_eq!(TEMPERATURE.name(), Some("Temperature"));
        assert_eq!(NUS_TX.name(), Some("Nordic UART TX"));
        assert_eq!(CS108_SERVICE.name(), None);
    }
}
