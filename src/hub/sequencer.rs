//! Live telemetry in id order, whichever instance committed it. Point ids are the
//! cluster's commit order (the PostgreSQL store hands them out in turn), so each
//! instance delivers commits to its fan-out strictly by id: its own as they
//! commit, the others' as NATS brings them, holding any that arrive early. The
//! fan-out's watermark stays a prefix of the commit order, and replay-then-live
//! meets without gap or duplicate on every instance.
//!
//! NATS core may lose a message (an instance killed between its commit and its
//! publish). A gap that stays open for [`GAP_WAIT`] is filled from the store,
//! where every id below a committed one is already committed; the store's head
//! is also checked every [`HEAD_EVERY`], for a lost commit with nothing after it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::hub::fanout::Fanout;
use crate::store::{Committed, DeviceBatch, Point, PointQuery, Store};
use crate::sync::{lock, AbortOnDrop};

/// How long a gap may wait for its commit to arrive over NATS.
pub(crate) const GAP_WAIT: Duration = Duration::from_millis(100);
/// How often the store's last id is compared with what was delivered.
const HEAD_EVERY: Duration = Duration::from_secs(1);
/// Points read from the store at a time when filling a gap.
const FILL_PAGE: u32 = 10_000;

struct State {
    /// The id the fan-out takes next.
    next: i64,
    /// Commits that arrived ahead of `next`, by their first id.
    early: BTreeMap<i64, Committed>,
    /// Since when `early` has waited on a gap.
    gap_since: Option<Instant>,
}

pub(crate) struct Sequencer {
    state: Mutex<State>,
    fanout: Arc<Fanout>,
}

fn points_in(c: &Committed) -> i64 {
    c.batches.iter().map(|b| b.points.len() as i64).sum()
}

impl Sequencer {
    /// Delivery continues after `last` (the fan-out's own watermark).
    pub fn new(last: i64, fanout: Arc<Fanout>) -> Self {
        Sequencer {
            state: Mutex::new(State {
                next: last + 1,
                early: BTreeMap::new(),
                gap_since: None,
            }),
            fanout,
        }
    }

    /// A commit, from this instance or another: delivered once everything before
    /// it is, and never twice.
    pub fn offer(&self, mut c: Committed) {
        let mut s = lock(&self.state);
        let end = c.first_id + points_in(&c);
        if end <= s.next {
            return; // delivered already (a gap fill got there first)
        }
        if c.first_id < s.next {
            trim_front(&mut c, s.next);
        }
        s.early.insert(c.first_id, c);
        loop {
            let next = s.next;
            let Some(entry) = s.early.first_entry() else { break };
            if *entry.key() != next {
                break;
            }
            let c = entry.remove();
            s.next = c.first_id + points_in(&c);
            self.fanout.publish(&c);
        }
        // Anything still held waits on a gap; any that end at or before `next`
        // were overtaken and go.
        let next = s.next;
        s.early.retain(|first, c| first + points_in(c) > next);
        s.gap_since = match (s.early.is_empty(), s.gap_since) {
            (true, _) => None,
            (false, None) => Some(Instant::now()),
            (false, since) => since,
        };
    }

    /// The ids missing before the first held commit, when the gap is old enough
    /// to be filled from the store: (after, up to).
    fn stale_gap(&self) -> Option<(i64, i64)> {
        let s = lock(&self.state);
        let since = s.gap_since?;
        let (first, _) = s.early.first_key_value()?;
        (since.elapsed() >= GAP_WAIT).then_some((s.next - 1, first - 1))
    }

    fn delivered(&self) -> i64 {
        lock(&self.state).next - 1
    }

    /// Reads the points after `after` up to `up_to` from the store and offers
    /// them, as one commit per page (device batches regrouped by device runs).
    async fn fill(&self, store: &dyn Store, mut after: i64, up_to: i64) {
        while after < up_to {
            let query = PointQuery {
                after_id: Some(after),
                up_to_id: Some(up_to),
                limit: FILL_PAGE,
                ..Default::default()
            };
            let points = match store.points(&query).await {
                Ok(p) if !p.is_empty() => p,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, after, up_to, "telemetry gap not read from the store; trying again");
                    return;
                }
            };
            // Ids are consecutive: a missing one would be a bug in the store.
            let first_id = points[0].id;
            after = points[points.len() - 1].id;
            let mut batches: Vec<DeviceBatch> = Vec::new();
            for p in points {
                let point = Point {
                    key: p.key,
                    value: p.value,
                    ts: p.ts,
                };
                match batches.last_mut() {
                    Some(b) if *b.device == *p.device => b.points.push(point),
                    _ => batches.push(DeviceBatch {
                        device: p.device.into(),
                        seq: None,
                        points: vec![point],
                    }),
                }
            }
            tracing::debug!(first_id, last_id = after, "telemetry gap filled from the store");
            self.offer(Committed { first_id, batches });
        }
    }

    /// Fills gaps from the store: one held past [`GAP_WAIT`], and the store's head
    /// ahead of what was delivered on two checks in a row.
    pub fn spawn_gap_filler(self: &Arc<Self>, store: Arc<dyn Store>) -> AbortOnDrop {
        let me = Arc::downgrade(self);
        AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(GAP_WAIT / 4);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut head_checked = Instant::now();
            let mut behind: Option<i64> = None;
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                if let Some((after, up_to)) = me.stale_gap() {
                    me.fill(&*store, after, up_to).await;
                }
                if head_checked.elapsed() >= HEAD_EVERY {
                    head_checked = Instant::now();
                    let Ok(head) = store.last_point_id().await else {
                        continue;
                    };
                    let delivered = me.delivered();
                    // Behind the head seen a check ago, still: that commit's
                    // message is not coming.
                    if let Some(seen) = behind.filter(|seen| delivered < *seen) {
                        me.fill(&*store, delivered, seen).await;
                    }
                    behind = (head > me.delivered()).then_some(head);
                }
            }
        }))
    }
}

/// Drops a commit's points before id `next` (a gap fill delivered them).
fn trim_front(c: &mut Committed, next: i64) {
    let mut skip = (next - c.first_id) as usize;
    c.batches.retain_mut(|b| {
        if skip >= b.points.len() {
            skip -= b.points.len();
            false
        } else {
            b.points.drain(..skip);
            skip = 0;
            true
        }
    });
    c.first_id = next;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::event::{Event, Happened};
    use crate::hub::fanout::Filter;
    use crate::outbox::Outbox;
    use prometheus_client::metrics::counter::Counter;
    use serde_json::json;

    fn commit(first_id: i64, device: &str, n: usize) -> Committed {
        Committed {
            first_id,
            batches: vec![DeviceBatch {
                device: device.into(),
                seq: None,
                points: (0..n)
                    .map(|i| Point {
                        key: "k".into(),
                        value: json!(first_id + i as i64),
                        ts: 0,
                    })
                    .collect(),
            }],
        }
    }

    fn ids(out: &Outbox<Event>) -> Vec<i64> {
        let mut ids = Vec::new();
        while let Some(e) = out.try_next() {
            let Happened::Telemetry { points, .. } = e.happened() else {
                panic!("not telemetry: {e:?}");
            };
            ids.extend(points.iter().map(|p| p.id));
        }
        ids
    }

    #[test]
    fn commits_reach_the_fan_out_in_id_order_once_each() {
        let fanout = Arc::new(Fanout::new(10, Counter::default(), Counter::default()));
        let out: Outbox<Event> = Outbox::new(100);
        fanout.subscribe(Filter::All, Filter::All, out.clone());
        let seq = Sequencer::new(10, fanout.clone());
        seq.offer(commit(14, "b", 2)); // early: 11..=13 missing
        assert!(ids(&out).is_empty());
        assert!(seq.stale_gap().is_none(), "a fresh gap waits for NATS");
        seq.offer(commit(11, "a", 3));
        assert_eq!(ids(&out), vec![11, 12, 13, 14, 15]);
        seq.offer(commit(11, "a", 3)); // the same again: ignored
        seq.offer(commit(14, "b", 2));
        assert!(ids(&out).is_empty());
        // A fill that overlaps what was delivered gives only the new part.
        let mut overlapping = commit(15, "b", 3);
        overlapping.batches[0].device = "b".into();
        seq.offer(overlapping);
        assert_eq!(ids(&out), vec![16, 17]);
        assert_eq!(
            fanout
                .subscribe(Filter::All, Filter::All, Outbox::new(1))
                .watermark,
            17
        );
    }

    #[test]
    fn a_gap_becomes_stale_after_its_wait() {
        let fanout = Arc::new(Fanout::new(0, Counter::default(), Counter::default()));
        let seq = Sequencer::new(0, fanout);
        seq.offer(commit(5, "a", 1));
        lock(&seq.state).gap_since = Some(Instant::now() - GAP_WAIT);
        assert_eq!(seq.stale_gap(), Some((0, 4)));
    }
}
