//! Values the simulated devices produce by themselves, encoded as the SIG
//! characteristics define them, drifting the way real sensors do.

use super::spec::GeneratorKind;

/// The next value of a generated characteristic, from the current one.
/// `Cs108Inventory` is driven by the reader's state instead and never reaches here.
pub fn next_value(kind: GeneratorKind, current: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    match kind {
        GeneratorKind::HeartRate => heart_rate(current, rng),
        GeneratorKind::BatteryLevel => {
            let level = current.first().copied().unwrap_or(100);
            vec![if level <= 5 { 100 } else { level - 1 }]
        }
        GeneratorKind::Temperature => {
            let v = i16::from_le_bytes(two(current, 2100));
            drift_i16(v, 2100, 300, 15, rng).to_le_bytes().to_vec()
        }
        GeneratorKind::Humidity => {
            let v = u16::from_le_bytes(two(current, 4500)) as i16;
            (drift_i16(v, 4500, 1500, 30, rng) as u16).to_le_bytes().to_vec()
        }
        GeneratorKind::Repeat | GeneratorKind::Cs108Inventory => current.to_vec(),
    }
}

fn two(v: &[u8], default: i16) -> [u8; 2] {
    match v {
        [a, b, ..] => [*a, *b],
        _ => default.to_le_bytes(),
    }
}

/// A random walk of at most `step` around `centre`, kept within `centre ± span`.
fn drift_i16(v: i16, centre: i16, span: i16, step: i16, rng: &mut fastrand::Rng) -> i16 {
    let next = v.saturating_add(rng.i16(-step..=step));
    next.clamp(centre - span, centre + span)
}

/// Heart Rate Measurement: flags (u8 format, sensor contact detected, RR present on
/// every third beat), bpm, optional RR interval in 1/1024 s.
fn heart_rate(current: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    let bpm = current.get(1).copied().unwrap_or(72) as i16;
    let bpm = drift_i16(bpm, 110, 50, 3, rng) as u8;
    let with_rr = rng.u8(0..3) == 0;
    let flags = 0x06 | if with_rr { 0x10 } else { 0 };
    let mut v = vec![flags, bpm];
    if with_rr {
        let rr = (60.0 / bpm.max(1) as f64 * 1024.0) as u16;
        v.extend_from_slice(&rr.to_le_bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_stay_plausible() {
        let mut rng = fastrand::Rng::with_seed(7);
        let (mut hr, mut t, mut h, mut b) = (vec![], vec![], vec![], vec![6]);
        for _ in 0..10_000 {
            hr = next_value(GeneratorKind::HeartRate, &hr, &mut rng);
            t = next_value(GeneratorKind::Temperature, &t, &mut rng);
            h = next_value(GeneratorKind::Humidity, &h, &mut rng);
            b = next_value(GeneratorKind::BatteryLevel, &b, &mut rng);
            assert!((60..=160).contains(&hr[1]), "bpm {}", hr[1]);
            let temp = i16::from_le_bytes([t[0], t[1]]);
            assert!((1800..=2400).contains(&temp));
            let hum = u16::from_le_bytes([h[0], h[1]]);
            assert!((3000..=6000).contains(&hum));
            assert!((5..=100).contains(&b[0]));
        }
    }
}
