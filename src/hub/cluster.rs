//! The hub's side of a cluster ([`crate::cluster`]): what other instances say
//! reaches the sequencer (telemetry), presence and the command router, and this
//! instance says every second which devices it holds.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::sequencer::Sequencer;
use crate::cluster::{Heard, ALIVE_EVERY};
use crate::sync::AbortOnDrop;

/// Acts on what the other instances say, and says every [`ALIVE_EVERY`] which
/// devices this one holds. A weak handle, as the feeds hold: the hub owns these.
pub(super) fn spawn(
    hub: std::sync::Weak<super::Inner>,
    mut heard: mpsc::UnboundedReceiver<Heard>,
    sequencer: Arc<Sequencer>,
) -> [AbortOnDrop; 2] {
    let listener = {
        let hub = hub.clone();
        AbortOnDrop(tokio::spawn(async move {
            while let Some(h) = heard.recv().await {
                let Some(hub) = hub.upgrade() else { return };
                match h {
                    Heard::Telemetry(c) => sequencer.offer(c),
                    Heard::Presence(note) => hub.presence.heard(note),
                    Heard::Alive(alive) => hub.presence.heard_alive(alive),
                    Heard::Command(record) => hub.commands.heard(record),
                }
            }
        }))
    };
    let heartbeat = AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(ALIVE_EVERY);
        loop {
            tick.tick().await;
            let Some(hub) = hub.upgrade() else { return };
            hub.presence.beat();
        }
    }));
    [listener, heartbeat]
}
