//! The gateway's set of radios and the routing between them. Each radio has its
//! own connection slots; a device keeps one [`DeviceId`] whichever radios hear it.
//! A connect goes through the radio that hears the device best and has a free slot;
//! a device whose link is re-made stays on its radio unless another hears it
//! clearly better (`gateway.radio_hysteresis_db`), and moves when its radio is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use super::{lock, GatewayError, GatewayResult};
use crate::ble::{Backend, DeviceId};

/// How long a radio's hearing of a device counts for routing.
const FRESH_MS: u64 = 10_000;

/// A radio handed to the gateway.
pub struct RadioSpec {
    /// Shown in `/api/v1/radios`, metrics and logs.
    pub name: String,
    pub backend: Arc<dyn Backend>,
    /// Links it can hold at once.
    pub slots: usize,
}

/// Refuses an empty set, a radio without slots, and two radios of one name.
pub(super) fn validate(specs: &[RadioSpec]) -> Result<(), String> {
    if specs.is_empty() {
        return Err("at least one radio is needed".into());
    }
    for (i, s) in specs.iter().enumerate() {
        if s.slots == 0 {
            return Err(format!("radio {:?} needs at least one slot", s.name));
        }
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(format!("two radios are named {:?}", s.name));
        }
    }
    Ok(())
}

/// One radio and what the gateway tracks of it.
pub(super) struct Radio {
    pub name: String,
    pub backend: Arc<dyn Backend>,
    pub slots: usize,
    /// When it last heard an advertisement: the gateway's clock + 1, 0 for never.
    pub last_advert_ms: AtomicU64,
    /// When its scan last started.
    pub scan_started_ms: AtomicU64,
    /// Its scan runs: started (by a scanner or the watchdog) and neither stopped
    /// nor failed since.
    pub scanning: AtomicBool,
    /// The watchdog is recovering it.
    pub recovering: AtomicBool,
}

/// The last time a radio heard a device: RSSI and when.
#[derive(Clone, Copy, Debug)]
struct Hearing {
    rssi: i16,
    at_ms: u64,
}

pub(super) struct Radios {
    pub list: Vec<Radio>,
    /// Device → per radio (by index), the last time it heard it.
    heard: Mutex<HashMap<DeviceId, Vec<Option<Hearing>>>>,
    /// Device → the radio (index) its link goes through.
    carriers: Mutex<HashMap<DeviceId, usize>>,
    hysteresis_db: i16,
}

impl Radios {
    pub fn new(specs: Vec<RadioSpec>, hysteresis_db: i16) -> Self {
        let list = specs
            .into_iter()
            .map(|s| Radio {
                name: s.name,
                backend: s.backend,
                slots: s.slots,
                last_advert_ms: AtomicU64::new(0),
                scan_started_ms: AtomicU64::new(0),
                scanning: AtomicBool::new(false),
                recovering: AtomicBool::new(false),
            })
            .collect();
        Radios {
            list,
            heard: Mutex::new(HashMap::new()),
            carriers: Mutex::new(HashMap::new()),
            hysteresis_db,
        }
    }

    /// Radio `radio` heard `id` at `rssi`; returns the radio that hears it best now
    /// and at what RSSI.
    pub fn heard(&self, radio: usize, id: &DeviceId, rssi: i16, now_ms: u64) -> (usize, i16) {
        let mut heard = lock(&self.heard);
        let by_radio = heard
            .entry(id.clone())
            .or_insert_with(|| vec![None; self.list.len()]);
        by_radio[radio] = Some(Hearing { rssi, at_ms: now_ms });
        best(by_radio, now_ms).unwrap_or((radio, rssi))
    }

    /// Forgets what any radio heard of `id`.
    pub fn forget(&self, id: &DeviceId) {
        lock(&self.heard).remove(id);
    }

    /// The radio a link to `id` should go through: the one that hears it best with
    /// a free slot, skipping `failed` (radios that just failed to connect it). The
    /// radio it was on stays unless another is clearly better. With one radio, that
    /// radio.
    pub fn route(
        &self,
        id: &DeviceId,
        previous: Option<usize>,
        failed: &[usize],
        now_ms: u64,
    ) -> GatewayResult<usize> {
        let carriers = lock(&self.carriers);
        let used = |i: usize| carriers.iter().filter(|(d, r)| **r == i && *d != id).count();
        let with_slots = |i: &usize| used(*i) < self.list[*i].slots;
        let mut free: Vec<usize> = (0..self.list.len())
            .filter(|i| !failed.contains(i) && with_slots(i))
            .collect();
        if free.is_empty() {
            // Every radio with a slot failed once already: try them again (a
            // single radio retries itself).
            free = (0..self.list.len()).filter(with_slots).collect();
        }
        if free.is_empty() {
            return Err(GatewayError::NoFreeSlot {
                id: id.clone(),
                radios: self.list.len(),
            });
        }
        let heard = lock(&self.heard);
        let fresh = |i: usize| {
            heard
                .get(id)
                .and_then(|v| v[i])
                .filter(|h| now_ms.saturating_sub(h.at_ms) <= FRESH_MS)
                .map(|h| h.rssi)
        };
        // The strongest fresh hearing among free radios; none heard it lately: the
        // previous radio if free, else the first free one.
        let best = free
            .iter()
            .filter_map(|&i| fresh(i).map(|r| (i, r)))
            .max_by_key(|&(_, r)| r);
        let stay = previous.filter(|p| free.contains(p));
        Ok(match (best, stay) {
            (Some((b, rssi)), Some(p)) => match fresh(p) {
                Some(prev) if rssi - prev <= self.hysteresis_db => p,
                _ => b,
            },
            (Some((b, _)), None) => b,
            (None, Some(p)) => p,
            (None, None) => free[0],
        })
    }

    /// The link to `id` now goes through `radio` (`None`: there is no link).
    pub fn carry(&self, id: &DeviceId, radio: Option<usize>) {
        let mut carriers = lock(&self.carriers);
        match radio {
            Some(r) => carriers.insert(id.clone(), r),
            None => carriers.remove(id),
        };
    }

    /// The radio the link to `id` goes through.
    pub fn carrier(&self, id: &DeviceId) -> Option<usize> {
        lock(&self.carriers).get(id).copied()
    }

    /// Links through `radio`.
    pub fn used(&self, radio: usize) -> usize {
        lock(&self.carriers).values().filter(|r| **r == radio).count()
    }
}

/// The radio hearing a device best, among fresh hearings.
fn best(by_radio: &[Option<Hearing>], now_ms: u64) -> Option<(usize, i16)> {
    by_radio
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            h.filter(|h| now_ms.saturating_sub(h.at_ms) <= FRESH_MS)
                .map(|h| (i, h.rssi))
        })
        .max_by_key(|&(_, rssi)| rssi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ble::sim::{SimBackend, SimConfig};

    async fn radios(slots: &[usize], hysteresis_db: i16) -> Radios {
        let world = SimBackend::new(&SimConfig::default()).unwrap();
        let specs = slots
            .iter()
            .enumerate()
            .map(|(i, &slots)| RadioSpec {
                name: format!("r{i}"),
                backend: world.radio(&format!("r{i}"), 0),
                slots,
            })
            .collect();
        Radios::new(specs, hysteresis_db)
    }

    #[tokio::test]
    async fn routes_to_the_strongest_free_radio_and_stays_within_the_hysteresis() {
        let r = radios(&[1, 1, 1], 6).await;
        let d = DeviceId::new("d");
        r.heard(0, &d, -80, 0);
        r.heard(1, &d, -60, 0);
        r.heard(2, &d, -70, 0);
        assert_eq!(r.route(&d, None, &[], 1).unwrap(), 1, "the strongest");
        assert_eq!(r.route(&d, Some(2), &[], 1).unwrap(), 1, "10 dB better: move");
        r.heard(2, &d, -64, 2);
        assert_eq!(r.route(&d, Some(2), &[], 3).unwrap(), 2, "4 dB better: stay");
        assert_eq!(
            r.route(&d, None, &[1], 3).unwrap(),
            2,
            "the strongest failed: the next"
        );
        assert_eq!(
            r.route(&d, None, &[0, 1, 2], 3).unwrap(),
            1,
            "all failed: all again"
        );
        // Hearing goes stale: the previous radio, else the first free.
        assert_eq!(r.route(&d, Some(0), &[], 3 + FRESH_MS + 10).unwrap(), 0);
        assert_eq!(r.route(&d, None, &[], 3 + FRESH_MS + 10).unwrap(), 0);
    }

    #[tokio::test]
    async fn a_full_radio_is_passed_over_and_no_free_slot_is_an_error() {
        let r = radios(&[1, 1], 6).await;
        let (a, b, c) = (DeviceId::new("a"), DeviceId::new("b"), DeviceId::new("c"));
        for d in [&a, &b, &c] {
            r.heard(0, d, -50, 0);
            r.heard(1, d, -70, 0);
        }
        r.carry(&a, Some(r.route(&a, None, &[], 1).unwrap()));
        assert_eq!(r.carrier(&a), Some(0));
        assert_eq!(r.route(&b, None, &[], 1).unwrap(), 1, "radio 0 is full");
        r.carry(&b, Some(1));
        let e = r.route(&c, None, &[], 1).unwrap_err();
        assert_eq!(e.code(), "no_free_slot");
        assert_eq!(
            r.route(&a, Some(0), &[], 1).unwrap(),
            0,
            "a's own slot counts as free for a"
        );
        r.carry(&a, None);
        assert_eq!((r.used(0), r.used(1)), (0, 1));
        assert_eq!(r.route(&c, None, &[], 1).unwrap(), 0);
    }
}
