//! The CS108 RFID reader's Bluetooth byte-stream protocol, as far as the simulated
//! reader speaks it. A frame is an 8-byte header and a payload:
//!
//! ```text
//! A7 B3 <len> <module> 82 <dir> <crc hi> <crc lo> <event hi> <event lo> <data...>
//! ```
//!
//! `len` counts the payload (event code and data); `module` is C2 RFID, 6A barcode,
//! D9 notification, E8 Silicon Labs, 5F Bluetooth; `dir` is 37 downlink (to the
//! reader) and 9E uplink. The real reader does not check the CRC of downlink frames
//! (clients send `00 00`); the simulated one fills uplink CRCs with CRC-16/CCITT of
//! the payload, which clients do not check either.

pub const PREFIX: u8 = 0xA7;
pub const TRANSPORT_BT: u8 = 0xB3;
pub const RESERVED: u8 = 0x82;
pub const DOWNLINK: u8 = 0x37;
pub const UPLINK: u8 = 0x9E;

pub const MODULE_RFID: u8 = 0xC2;
pub const MODULE_BARCODE: u8 = 0x6A;
pub const MODULE_NOTIFICATION: u8 = 0xD9;
pub const MODULE_SILABS: u8 = 0xE8;
pub const MODULE_BLUETOOTH: u8 = 0x5F;

pub const EV_RFID_POWER_ON: u16 = 0x8000;
pub const EV_RFID_POWER_OFF: u16 = 0x8001;
pub const EV_RFID_COMMAND: u16 = 0x8002;
pub const EV_RFID_DATA: u16 = 0x8100;
pub const EV_BARCODE_POWER_ON: u16 = 0x9000;
pub const EV_BARCODE_POWER_OFF: u16 = 0x9001;
pub const EV_BATTERY_VOLTAGE: u16 = 0xA000;
pub const EV_TRIGGER_STATE: u16 = 0xA001;
pub const EV_BATTERY_AUTO_ON: u16 = 0xA002;
pub const EV_BATTERY_AUTO_OFF: u16 = 0xA003;
pub const EV_ERROR: u16 = 0xA101;
pub const EV_SILABS_VERSION: u16 = 0xB000;
pub const EV_BT_VERSION: u16 = 0xC000;
pub const EV_BT_DEVICE_NAME: u16 = 0xC004;

/// Error codes of the reader's error notification (event A101).
pub const ERR_BAD_HEADER: u16 = 0x0000;
pub const ERR_BAD_LENGTH: u16 = 0x0001;
pub const ERR_UNKNOWN_EVENT: u16 = 0x0002;

/// RFID firmware register holding the command to run (HST_CMD).
const REG_HST_CMD: u16 = 0xF000;
const CMD_INVENTORY: u32 = 0x0F;

/// A parsed downlink frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub module: u8,
    pub event: u16,
    pub data: Vec<u8>,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    BadHeader,
    BadLength,
}

pub fn parse(bytes: &[u8]) -> Result<Frame, FrameError> {
    if bytes.len() < 10
        || bytes[0] != PREFIX
        || bytes[1] != TRANSPORT_BT
        || bytes[4] != RESERVED
        || bytes[5] != DOWNLINK
    {
        return Err(FrameError::BadHeader);
    }
    let len = bytes[2] as usize;
    if len < 2 || bytes.len() != 8 + len {
        return Err(FrameError::BadLength);
    }
    Ok(Frame {
        module: bytes[3],
        event: u16::from_be_bytes([bytes[8], bytes[9]]),
        data: bytes[10..].to_vec(),
    })
}

/// Builds an uplink frame.
pub fn uplink(module: u8, event: u16, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(2 + data.len());
    payload.extend_from_slice(&event.to_be_bytes());
    payload.extend_from_slice(data);
    let crc = crate::ble::crc::crc16_ccitt_false(&payload);
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&[
        PREFIX,
        TRANSPORT_BT,
        payload.len() as u8,
        module,
        RESERVED,
        UPLINK,
    ]);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Builds a downlink frame (what a client sends); used by tests and examples.
pub fn downlink(module: u8, event: u16, data: &[u8]) -> Vec<u8> {
    let mut out = vec![
        PREFIX,
        TRANSPORT_BT,
        (2 + data.len()) as u8,
        module,
        RESERVED,
        DOWNLINK,
        0,
        0,
    ];
    out.extend_from_slice(&event.to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// The reader's state that commands change.
#[derive(Debug, Clone)]
pub struct ReaderState {
    pub rfid_powered: bool,
    pub inventory_running: bool,
    pub battery_mv: u16,
    /// Tag reports sent since the inventory started; gives each tag a distinct EPC.
    pub tags_reported: u32,
    pub device_name: String,
}

impl ReaderState {
    pub fn new(device_name: &str) -> Self {
        ReaderState {
            rfid_powered: false,
            inventory_running: false,
            battery_mv: 4080,
            tags_reported: 0,
            device_name: device_name.to_string(),
        }
    }

    /// Answers one written frame with zero or more uplink frames.
    pub fn handle(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let frame = match parse(bytes) {
            Ok(f) => f,
            Err(FrameError::BadHeader) => return vec![error(ERR_BAD_HEADER)],
            Err(FrameError::BadLength) => return vec![error(ERR_BAD_LENGTH)],
        };
        let ack = |f: &Frame| uplink(f.module, f.event, &[0x00]);
        match (frame.module, frame.event) {
            (MODULE_NOTIFICATION, EV_BATTERY_VOLTAGE) => {
                vec![uplink(
                    MODULE_NOTIFICATION,
                    EV_BATTERY_VOLTAGE,
                    &self.battery_mv.to_be_bytes(),
                )]
            }
            (MODULE_NOTIFICATION, EV_TRIGGER_STATE) => {
                // 0: trigger released.
                vec![uplink(MODULE_NOTIFICATION, EV_TRIGGER_STATE, &[0x00])]
            }
            (MODULE_NOTIFICATION, EV_BATTERY_AUTO_ON | EV_BATTERY_AUTO_OFF) => vec![ack(&frame)],
            (MODULE_RFID, EV_RFID_POWER_ON) => {
                self.rfid_powered = true;
                vec![ack(&frame)]
            }
            (MODULE_RFID, EV_RFID_POWER_OFF) => {
                self.rfid_powered = false;
                self.inventory_running = false;
                vec![ack(&frame)]
            }
            (MODULE_RFID, EV_RFID_COMMAND) => self.rfid_command(&frame),
            (MODULE_BARCODE, EV_BARCODE_POWER_ON | EV_BARCODE_POWER_OFF) => vec![ack(&frame)],
            (MODULE_SILABS, EV_SILABS_VERSION) => {
                vec![uplink(MODULE_SILABS, EV_SILABS_VERSION, &[0x01, 0x00, 0x03])]
            }
            (MODULE_BLUETOOTH, EV_BT_VERSION) => {
                vec![uplink(MODULE_BLUETOOTH, EV_BT_VERSION, &[0x03, 0x02, 0x01])]
            }
            (MODULE_BLUETOOTH, EV_BT_DEVICE_NAME) => {
                let mut name = [0u8; 21];
                let n = self.device_name.len().min(20);
                name[..n].copy_from_slice(&self.device_name.as_bytes()[..n]);
                vec![uplink(MODULE_BLUETOOTH, EV_BT_DEVICE_NAME, &name)]
            }
            _ => vec![error(ERR_UNKNOWN_EVENT)],
        }
    }

    /// A command for the RFID firmware: register writes (`70 01 <reg LE16> <value LE32>`),
    /// register reads (`00 01 <reg LE16> 00 00 00 00`) and abort (`40 03 ...`).
    fn rfid_command(&mut self, frame: &Frame) -> Vec<Vec<u8>> {
        let d = &frame.data;
        let ack = uplink(MODULE_RFID, EV_RFID_COMMAND, &[0x00]);
        if d.len() != 8 {
            return vec![error(ERR_BAD_LENGTH)];
        }
        let reg = u16::from_le_bytes([d[2], d[3]]);
        match (d[0], d[1]) {
            (0x70, 0x01) => {
                let value = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
                if reg == REG_HST_CMD && value == CMD_INVENTORY {
                    self.inventory_running = true;
                    self.tags_reported = 0;
                }
                vec![ack]
            }
            (0x00, 0x01) => {
                let mut data = vec![0x00, 0x01, d[2], d[3]];
                data.extend_from_slice(&0u32.to_le_bytes());
                vec![ack, uplink(MODULE_RFID, EV_RFID_DATA, &data)]
            }
            (0x40, 0x03) => {
                self.inventory_running = false;
                vec![
                    ack,
                    uplink(
                        MODULE_RFID,
                        EV_RFID_DATA,
                        &[0x40, 0x03, 0xBF, 0xFC, 0xBF, 0xFC, 0xBF, 0xFC],
                    ),
                ]
            }
            _ => vec![error(ERR_UNKNOWN_EVENT)],
        }
    }

    /// One inventory round's tag report while an inventory runs: a compact inventory
    /// packet (`04 00 05 80 <len LE16> 00 00`) carrying PC, a 96-bit EPC and RSSI.
    pub fn next_tag_report(&mut self, rssi: u8) -> Option<Vec<u8>> {
        if !self.inventory_running {
            return None;
        }
        self.tags_reported = self.tags_reported.wrapping_add(1);
        // Eight distinct tags in the field, reported round-robin.
        let tag = self.tags_reported % 8;
        let mut record = vec![0x30, 0x00]; // PC: 96-bit EPC
        record.extend_from_slice(&[0xE2, 0x80, 0x68, 0x94, 0x00, 0x00, 0x50, 0x0A]);
        record.extend_from_slice(&(0xB000_0000_u32 | tag).to_be_bytes());
        record.push(rssi);
        let mut data = vec![0x04, 0x00, 0x05, 0x80];
        data.extend_from_slice(&(record.len() as u16).to_le_bytes());
        data.extend_from_slice(&[0x00, 0x00]);
        data.extend_from_slice(&record);
        Some(uplink(MODULE_RFID, EV_RFID_DATA, &data))
    }
}

fn error(code: u16) -> Vec<u8> {
    uplink(MODULE_NOTIFICATION, EV_ERROR, &code.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_battery_voltage_like_the_real_reader() {
        let mut r = ReaderState::new("CS108Reader000001");
        r.battery_mv = 0x0FF0;
        let out = r.handle(&hex::decode("A7B302D98237000 0A000".replace(' ', "")).unwrap());
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!(&f[..6], &[0xA7, 0xB3, 0x04, 0xD9, 0x82, 0x9E]);
        assert_eq!(&f[8..], &[0xA0, 0x00, 0x0F, 0xF0]);
    }

    #[test]
    fn inventory_streams_until_aborted() {
        let mut r = ReaderState::new("x");
        assert!(r.next_tag_report(0x40).is_none());
        let start = downlink(
            MODULE_RFID,
            EV_RFID_COMMAND,
            &[0x70, 0x01, 0x00, 0xF0, 0x0F, 0, 0, 0],
        );
        assert_eq!(r.handle(&start).len(), 1);
        let a = r.next_tag_report(0x40).unwrap();
        let b = r.next_tag_report(0x40).unwrap();
        assert_ne!(a, b, "successive reports name different tags");
        assert_eq!(u16::from_be_bytes([a[8], a[9]]), EV_RFID_DATA);
        let abort = downlink(MODULE_RFID, EV_RFID_COMMAND, &[0x40, 0x03, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.handle(&abort).len(), 2);
        assert!(r.next_tag_report(0x40).is_none());
    }

    #[test]
    fn unknown_and_malformed_frames_get_the_error_notification() {
        let mut r = ReaderState::new("x");
        let unknown = r.handle(&downlink(MODULE_NOTIFICATION, 0xA0FF, &[]));
        assert_eq!(&unknown[0][8..], &[0xA1, 0x01, 0x00, 0x02]);
        let garbage = r.handle(&[1, 2, 3]);
        assert_eq!(&garbage[0][8..], &[0xA1, 0x01, 0x00, 0x00]);
        let mut short = downlink(MODULE_NOTIFICATION, EV_BATTERY_VOLTAGE, &[]);
        short[2] = 9;
        assert_eq!(&r.handle(&short)[0][8..], &[0xA1, 0x01, 0x00, 0x01]);
    }
}
