//! Checksums device protocols put in their frames: the CS108's frames (the
//! simulator's reader) and device profiles' frame rules both use CRC-16/CCITT-FALSE.

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection.
pub fn crc16_ccitt_false(data: &[u8]) -> u16 {
    data.iter().fold(0xFFFF_u16, |mut crc, &b| {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_catalogue_check_value() {
        // The catalogue's check: CRC of "123456789".
        assert_eq!(super::crc16_ccitt_false(b"123456789"), 0x29B1);
    }
}
