//! The router among other instances of a cluster: their status changes of a
//! command (heard), a device that connected here after being elsewhere (adopt),
//! and a copy found stale by the store's conditional update (resync, refresh).

use super::Router;
use crate::hub::commands::Delivery;
use crate::hub::event::Event;
use crate::outbox::Outbox;
use crate::store::{CommandRecord, CommandStatus};

impl Router {
    /// Keeps tracking a command whose status another instance changed only if it
    /// is still this router's to move: queued, or sent to a device online here.
    /// Otherwise its sender here keeps hearing of it.
    pub(super) fn adopt_or_forget(
        &mut self,
        record: CommandRecord,
        issuer: Option<Outbox<Event>>,
        order: Option<u64>,
    ) {
        let here = self.online.contains_key(record.device.as_str());
        let ours = !record.status.is_final() && (record.status == CommandStatus::Queued || here);
        if ours {
            self.track_taken(record, issuer, order);
        } else if let Some(out) = issuer.filter(|_| !record.status.is_final()) {
            self.issued_here.insert(record.id.clone(), out);
        }
    }

    /// Tracks a command with its status, taking the slot its device holds here
    /// when it is sent or delivered to a connection here.
    fn track_taken(&mut self, record: CommandRecord, issuer: Option<Outbox<Event>>, order: Option<u64>) {
        if matches!(record.status, CommandStatus::Sent | CommandStatus::Delivered)
            && self.online.contains_key(record.device.as_str())
        {
            *self.busy.entry(record.device.clone()).or_default() += 1;
        }
        self.track(record, issuer, order);
    }

    /// The command as the store has it now (`None` when it cannot be read, and
    /// then nothing changed here); `Some(None)` if the store has no such command.
    async fn reread(&mut self, id: &str) -> Option<Option<CommandRecord>> {
        match self.store.command(id).await {
            Ok(fresh) => Some(fresh),
            Err(e) => {
                tracing::warn!(command = id, error = %e, "command not read again");
                None
            }
        }
    }

    /// Tracks a command as the store has it now, if it is open (keeping who sent
    /// it from here); forgets it if not.
    pub(super) async fn refresh(&mut self, id: &str) {
        let Some(fresh) = self.reread(id).await else {
            return;
        };
        let (issuer, order) = match self.untrack(id) {
            Some(open) => (open.issuer, Some(open.order)),
            None => (self.issued_here.remove(id), None),
        };
        if let Some(record) = fresh.filter(|r| !r.status.is_final()) {
            self.track_taken(record, issuer, order);
        }
    }

    /// Reads a command the store says changed elsewhere, and takes its status.
    pub(super) async fn resync(&mut self, id: &str) {
        let Some(fresh) = self.reread(id).await else {
            return;
        };
        let Some(open) = self.untrack(id) else { return };
        if let Some(record) = fresh {
            let device = record.device.clone();
            if record.status.is_final() {
                if let Some(out) = &open.issuer {
                    out.reply(Event::command_status(&record));
                }
            }
            self.adopt_or_forget(record, open.issuer, Some(open.order));
            self.dispatch(&device).await;
        }
    }

    /// Another instance stored a status change of a command: whoever here sent
    /// it and the device's subscribers here hear it, and this router's copy
    /// follows it.
    pub(super) async fn heard(&mut self, record: CommandRecord) {
        let id = record.id.clone();
        let device = record.device.clone();
        let (issuer, order) = match self.untrack(&id) {
            Some(open) => {
                // Cancelled elsewhere while sent to this instance's connection.
                if record.status == CommandStatus::Cancelled
                    && matches!(open.record.status, CommandStatus::Sent | CommandStatus::Delivered)
                {
                    if let Some((_, sink)) = self.online.get(device.as_str()) {
                        sink.deliver(Delivery::Cancel(id.clone()));
                    }
                }
                (open.issuer, Some(open.order))
            }
            None => (self.issued_here.remove(&id), None),
        };
        let event = Event::command_status(&record);
        if let Some(out) = &issuer {
            out.reply(event.clone());
        }
        self.fanout.device_event(event, issuer.as_ref());
        self.adopt_or_forget(record, issuer, order);
        self.dispatch(&device).await;
    }

    /// A device connected here that may have been elsewhere: its open commands
    /// are read from the store, and those sent to an earlier connection are
    /// queued to go again.
    pub(super) async fn adopt(&mut self, device: &str) {
        let stored = match self.store.open_commands_of(device).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(device, error = %e, "open commands not read for a device that connected");
                return;
            }
        };
        for c in stored {
            if self.open.get(&c.id).is_some_and(|o| o.record.status == c.status) {
                continue;
            }
            let issuer = match self.untrack(&c.id) {
                Some(open) => open.issuer,
                None => self.issued_here.remove(&c.id),
            };
            self.take_over(c, issuer).await;
        }
    }
}
