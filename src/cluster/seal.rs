//! What makes a cluster message an instance's: every message an instance publishes
//! is sealed with HMAC-SHA256 under the shared `cluster.secret`, and a message that
//! does not open (no seal, a wrong one, too old, or already heard) is dropped, so a
//! publisher on the same NATS who is not an instance is ignored.
//!
//! On the wire a sealed message is one header line, then the body unchanged:
//!
//! ```text
//! GW1 <sender> <counter> <unix ms> <hex HMAC-SHA256>\n<body>
//! ```
//!
//! The MAC covers the version, the NATS subject (a message cannot be moved to
//! another subject or another `cluster.name`), the sender, its counter, the time and
//! the body. Tags are compared in constant time.
//!
//! Replay protection, what it is: a message is accepted only within [`WINDOW`] of
//! the time it was sealed (instances' clocks must agree to within that), and at most
//! once per receiving instance: each sender numbers its messages (a fresh random
//! sender id per process, counting from 1), and a receiver drops any number it has
//! already passed. NATS core delivers one publisher's messages in order, so an
//! instance's own traffic is never refused. What it is not: an instance started
//! after a message was sealed has not seen its number, and accepts a copy replayed
//! to it within the window; messages are not encrypted (anyone on the NATS reads
//! them: use NATS TLS and credentials for that); and someone who can drop or delay
//! messages on the NATS still can (the store is the durable copy).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use hmac_sha2::Sha256;

/// How far a message's seal time may be from the receiver's clock, either way.
pub(crate) const WINDOW: Duration = Duration::from_secs(30);

const VERSION: &str = "GW1";

type HmacSha256 = Hmac<Sha256>;

/// Why a message was dropped.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum Rejected {
    #[error("not sealed by an instance (no GW1 header)")]
    Unsealed,
    #[error("the seal does not verify (another secret, or altered)")]
    BadSeal,
    #[error("sealed {age_ms} ms from now, outside the {}-second window", WINDOW.as_secs())]
    Stale { age_ms: i64 },
    #[error("a replay: message {counter} of this sender was already passed")]
    Replayed { counter: u64 },
}

/// The MAC over a message's header fields and body.
fn mac(key: &HmacSha256, subject: &str, sender: &str, counter: u64, at_ms: i64, body: &[u8]) -> HmacSha256 {
    key.clone()
        .chain_update(format!("{VERSION}\n{subject}\n{sender} {counter} {at_ms}\n"))
        .chain_update(body)
}

fn keyed(secret: &str) -> HmacSha256 {
    // HMAC takes a key of any length (a long one is hashed first): this cannot fail.
    HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC keys of any length"))
}

/// Seals this instance's messages, numbering them in the order they are sealed,
/// which must be the order they are published.
pub(crate) struct Sealer {
    key: HmacSha256,
    sender: String,
    counter: u64,
}

impl Sealer {
    pub fn new(secret: &str, sender: &str) -> Sealer {
        Sealer {
            key: keyed(secret),
            sender: sender.to_string(),
            counter: 0,
        }
    }

    /// `body` sealed for `subject` at `now_ms`.
    pub fn seal(&mut self, subject: &str, body: &[u8], now_ms: i64) -> Vec<u8> {
        self.counter += 1;
        let tag = mac(&self.key, subject, &self.sender, self.counter, now_ms, body)
            .finalize()
            .into_bytes();
        let header = format!(
            "{VERSION} {} {} {now_ms} {}\n",
            self.sender,
            self.counter,
            hex::encode(tag)
        );
        let mut out = Vec::with_capacity(header.len() + body.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    }
}

/// Opens the other instances' messages, remembering each sender's last number.
pub(crate) struct Opener {
    key: HmacSha256,
    /// Sender → the last number passed, and when (forgotten after a silence long
    /// enough that anything it sealed before is stale).
    last: HashMap<String, (u64, Instant)>,
    pruned: Instant,
}

impl Opener {
    pub fn new(secret: &str) -> Opener {
        Opener {
            key: keyed(secret),
            last: HashMap::new(),
            pruned: Instant::now(),
        }
    }

    /// The body of a message on `subject`, when it verifies.
    pub fn open<'a>(&mut self, subject: &str, message: &'a [u8], now_ms: i64) -> Result<&'a [u8], Rejected> {
        let split = message
            .iter()
            .position(|b| *b == b'\n')
            .ok_or(Rejected::Unsealed)?;
        let (header, body) = (&message[..split], &message[split + 1..]);
        let header = std::str::from_utf8(header).map_err(|_| Rejected::Unsealed)?;
        let fields: Vec<&str> = header.split(' ').collect();
        let [VERSION, sender, counter, at_ms, tag] = fields[..] else {
            return Err(Rejected::Unsealed);
        };
        let counter: u64 = counter.parse().map_err(|_| Rejected::Unsealed)?;
        let at_ms: i64 = at_ms.parse().map_err(|_| Rejected::Unsealed)?;
        let tag = hex::decode(tag).map_err(|_| Rejected::BadSeal)?;
        // Constant time (`verify_slice`), and before anything else is believed.
        mac(&self.key, subject, sender, counter, at_ms, body)
            .verify_slice(&tag)
            .map_err(|_| Rejected::BadSeal)?;
        let age_ms = now_ms.saturating_sub(at_ms);
        if age_ms.unsigned_abs() > WINDOW.as_millis() as u64 {
            return Err(Rejected::Stale { age_ms });
        }
        let now = Instant::now();
        match self.last.get_mut(sender) {
            Some((last, _)) if counter <= *last => return Err(Rejected::Replayed { counter }),
            Some(entry) => *entry = (counter, now),
            None => {
                self.last.insert(sender.to_string(), (counter, now));
            }
        }
        if now.duration_since(self.pruned) > WINDOW {
            // Silent for three windows: whatever the sender sealed is outside the
            // window by now, with any clock skew the window allows.
            self.last
                .retain(|_, (_, heard)| now.duration_since(*heard) < 3 * WINDOW);
            self.pruned = now;
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_800_000_000;

    #[test]
    fn a_sealed_message_opens_once_on_its_subject_with_its_secret() {
        let mut sealer = Sealer::new("a shared secret", "instance-a");
        let mut opener = Opener::new("a shared secret");
        let sealed = sealer.seal("hub.presence", br#"{"online":true}"#, NOW);
        assert_eq!(
            opener.open("hub.presence", &sealed, NOW + 5),
            Ok(&br#"{"online":true}"#[..])
        );
        assert_eq!(
            opener.open("hub.presence", &sealed, NOW + 6),
            Err(Rejected::Replayed { counter: 1 })
        );
        // The next one opens; another subject or cluster name does not.
        let next = sealer.seal("hub.presence", b"{}", NOW);
        assert_eq!(opener.open("other.presence", &next, NOW), Err(Rejected::BadSeal));
        assert_eq!(opener.open("hub.telemetry", &next, NOW), Err(Rejected::BadSeal));
        assert!(opener.open("hub.presence", &next, NOW).is_ok());
        // Another secret.
        let mut other = Opener::new("another secret!!");
        let third = sealer.seal("hub.alive", b"{}", NOW);
        assert_eq!(other.open("hub.alive", &third, NOW), Err(Rejected::BadSeal));
    }

    #[test]
    fn forged_altered_and_stale_messages_are_rejected() {
        let mut sealer = Sealer::new("a shared secret", "instance-a");
        let mut opener = Opener::new("a shared secret");
        assert_eq!(
            opener.open("hub.presence", br#"{"online":true}"#, NOW),
            Err(Rejected::Unsealed)
        );
        assert_eq!(
            opener.open("hub.presence", b"GW1 x 1 1 00\n{}", NOW),
            Err(Rejected::BadSeal)
        );
        let mut altered = sealer.seal("hub.telemetry", br#"{"v":1}"#, NOW);
        *altered.last_mut().unwrap() = b']';
        assert_eq!(
            opener.open("hub.telemetry", &altered, NOW),
            Err(Rejected::BadSeal)
        );
        let old = sealer.seal("hub.telemetry", b"{}", NOW - 31_000);
        assert_eq!(
            opener.open("hub.telemetry", &old, NOW),
            Err(Rejected::Stale { age_ms: 31_000 })
        );
        let future = sealer.seal("hub.telemetry", b"{}", NOW + 31_000);
        assert!(matches!(
            opener.open("hub.telemetry", &future, NOW),
            Err(Rejected::Stale { .. })
        ));
        // Skew within the window is fine, and numbers may skip (a lost message).
        let skewed = sealer.seal("hub.telemetry", b"{}", NOW + 20_000);
        assert!(opener.open("hub.telemetry", &skewed, NOW).is_ok());
    }
}
