//! Device ids, telemetry keys and command names as MQTT topic levels. Each is
//! exactly one level: anything a topic cannot carry, or that would change its shape,
//! is percent-escaped (`a/#` → `a%2F%23`), so
//!
//! - every name has a valid topic (no wildcard, no NUL, nothing the broker refuses
//!   as malformed UTF-8), and one bad key can never stall the export;
//! - the shape of a topic says what it is: telemetry is `<base>/<device>/<key>`,
//!   two levels under the base, a command `<base>/<device>/command/<name>`, three.
//!   What the export publishes therefore never matches the command filter
//!   `<base>/+/command/+`, whatever a device calls its keys.
//!
//! Escaped: `%` itself, `/`, `+`, `#`, control characters (C0, DEL, C1: Mosquitto
//! refuses them as malformed UTF-8 and ends the session) and Unicode noncharacters
//! (also refused). Everything else, letters of any script included, is kept, so the
//! usual keys (`temperature`, `heart_rate`) are their own topics.

/// Topics are at most 65,535 bytes long (a 16-bit length on the wire).
pub const MAX_TOPIC: usize = 65_535;

/// Whether `c` cannot stand for itself in a topic level.
fn escaped(c: char) -> bool {
    let n = c as u32;
    matches!(c, '%' | '/' | '+' | '#')
        || c.is_control()
        || (0xFDD0..=0xFDEF).contains(&n)
        || n & 0xFFFE == 0xFFFE
}

/// `name` as one topic level; `None` for an empty name (an empty level would make
/// `<base>//<key>`, which reads back as no device).
pub fn level(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    if !name.chars().any(escaped) {
        return Some(name.to_string());
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if escaped(c) {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The name a topic level stands for: [`level`] undone. `None` when the level is
/// empty, or holds a `%` that escapes nothing.
pub fn name(level: &str) -> Option<String> {
    if level.is_empty() {
        return None;
    }
    if !level.contains('%') {
        return Some(level.to_string());
    }
    let bytes = level.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = level.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `<base>/<levels…>`, each part one level ([`level`]); `None` when a part is empty
/// or the topic would be longer than MQTT allows.
pub fn join(base: &str, parts: &[&str]) -> Option<String> {
    let mut topic = base.to_string();
    for part in parts {
        topic.push('/');
        topic.push_str(&level(part)?);
    }
    (topic.len() <= MAX_TOPIC).then_some(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usual_names_are_their_own_level() {
        for n in [
            "temperature",
            "heart_rate",
            "C0:FF:EE:00:00:06",
            "température",
            "温度",
            "a b",
        ] {
            assert_eq!(level(n).as_deref(), Some(n));
            assert_eq!(name(n).as_deref(), Some(n));
        }
    }

    #[test]
    fn what_a_topic_cannot_carry_is_escaped_and_comes_back() {
        for (n, escaped) in [
            ("a/#", "a%2F%23"),
            ("+", "%2B"),
            ("command/x", "command%2Fx"),
            ("50%", "50%25"),
            ("nul\0", "nul%00"),
            ("line\nbreak", "line%0Abreak"),
            ("c1\u{85}", "c1%C2%85"),
            ("non\u{FFFE}", "non%EF%BF%BE"),
            ("non\u{FDD0}", "non%EF%B7%90"),
            ("//", "%2F%2F"),
        ] {
            let l = level(n).unwrap();
            assert_eq!(l, escaped, "{n:?}");
            assert!(!l.contains(['/', '+', '#', '\0']));
            assert_eq!(name(&l).as_deref(), Some(n));
        }
    }

    #[test]
    fn empty_over_long_and_broken_names_have_no_topic() {
        assert_eq!(level(""), None);
        assert_eq!(name(""), None);
        assert_eq!(name("%"), None);
        assert_eq!(name("%zz"), None);
        assert_eq!(name("%FF"), None, "not UTF-8");
        assert_eq!(join("base", &["dev", ""]), None);
        assert_eq!(join("base", &["dev", &"k".repeat(MAX_TOPIC)]), None);
        assert_eq!(join("base", &["dev", "a/#"]).as_deref(), Some("base/dev/a%2F%23"));
    }
}
