//! The part of a telemetry append both stores share: given what each device last
//! stored, which batches are new and which are retries, the rows to insert, and
//! each device's new `last_seq`.

use std::collections::{BTreeMap, HashMap};

use crate::store::{DeviceBatch, Point};

/// The devices whose stored `last_seq` an append must read: those sending a seq,
/// each once, in order (so transactions lock their rows in the same order).
pub(crate) fn devices_with_seq(batches: &[DeviceBatch]) -> Vec<&str> {
    let mut devices: Vec<&str> = batches
        .iter()
        .filter(|b| b.seq.is_some())
        .map(|b| b.device.as_ref())
        .collect();
    devices.sort_unstable();
    devices.dedup();
    devices
}

/// What an append writes.
pub(crate) struct Plan<'a> {
    /// For each batch: stored (true), or a retry of something stored (false).
    pub stored: Vec<bool>,
    /// (device, point) for every point of the stored batches, in order.
    pub rows: Vec<(&'a str, &'a Point)>,
    /// Each device with a stored batch and its highest seq (0 without one), by id.
    pub devices: Vec<(&'a str, i64)>,
}

/// Plans an append, given each device's stored `last_seq` (read inside the
/// transaction that stores, so nothing slips between). A batch whose seq is not
/// above its device's last one, counting earlier batches of the same append, is a
/// retry.
pub(crate) fn plan<'a>(batches: &'a [DeviceBatch], mut last: HashMap<&'a str, i64>) -> Plan<'a> {
    let stored: Vec<bool> = batches
        .iter()
        .map(|b| match b.seq {
            None => true,
            Some(seq) => {
                let high = last.entry(b.device.as_ref()).or_insert(0);
                let fresh = seq as i64 > *high;
                *high = (*high).max(seq as i64);
                fresh
            }
        })
        .collect();
    let kept = || {
        batches
            .iter()
            .zip(&stored)
            .filter(|(_, kept)| **kept)
            .map(|(b, _)| b)
    };
    let rows = kept()
        .flat_map(|b| b.points.iter().map(move |p| (b.device.as_ref(), p)))
        .collect();
    let mut devices: BTreeMap<&str, i64> = BTreeMap::new();
    for b in kept() {
        let high = devices.entry(b.device.as_ref()).or_insert(0);
        *high = (*high).max(b.seq.unwrap_or(0) as i64);
    }
    Plan {
        stored,
        rows,
        devices: devices.into_iter().collect(),
    }
}
