//! Who may hold a WebSocket front end's connection slots. A connection that has
//! authenticated (or needs not: credentials are off) holds one of its front end's
//! slots; one still to authenticate in-band holds a place in the door's own,
//! smaller budget for such sockets (`http.max_unauthenticated_websockets`, shared
//! by every front end) and takes a slot only once it has authenticated. So sockets
//! that never authenticate cannot take an authenticated client's place: they only
//! wait for their deadline (`http.auth_deadline_ms`) among themselves.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection was turned away; each front end words it as its own error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    /// Every slot of the front end is held by connections that authenticated.
    #[error("at most {0} connections at once")]
    Slots(usize),
    /// Too many sockets are waiting to authenticate already.
    #[error(
        "too many connections are waiting to authenticate (at most {0}); send a credential at the upgrade"
    )]
    Waiting(usize),
}

/// A front end's connection slots, held by connections that authenticated.
#[derive(Clone, Debug)]
pub struct Slots {
    slots: Arc<Semaphore>,
    max: usize,
}

/// The door's budget of sockets waiting to authenticate, one for every front end.
#[derive(Clone, Debug)]
pub struct Waiting {
    places: Arc<Semaphore>,
    max: usize,
}

impl Waiting {
    pub fn new(max: usize) -> Waiting {
        Waiting {
            places: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A ticket for a new connection: a slot when it is `authenticated` (or
    /// needs not be), else a place in `waiting` until it authenticates.
    pub fn admit(&self, waiting: &Waiting, authenticated: bool) -> Result<Ticket, Full> {
        let held = if authenticated {
            Held::Slot(self.take()?)
        } else {
            let place = waiting.places.clone().try_acquire_owned();
            Held::Waiting(place.map_err(|_| Full::Waiting(waiting.max))?)
        };
        Ok(Ticket {
            held,
            slots: self.clone(),
        })
    }

    fn take(&self) -> Result<OwnedSemaphorePermit, Full> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Slots(self.max))
    }
}

/// What a connection holds for as long as it lives.
#[derive(Debug)]
pub struct Ticket {
    held: Held,
    slots: Slots,
}

#[derive(Debug)]
enum Held {
    Slot(#[allow(dead_code)] OwnedSemaphorePermit),
    Waiting(#[allow(dead_code)] OwnedSemaphorePermit),
}

impl Ticket {
    /// The connection has authenticated: it takes a slot of its front end (if it
    /// holds none yet) and leaves the waiting budget; `Full` when no slot is free.
    pub fn authenticated(&mut self) -> Result<(), Full> {
        if let Held::Waiting(_) = self.held {
            self.held = Held::Slot(self.slots.take()?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_sockets_never_take_an_authenticated_ones_slot() {
        let (slots, waiting) = (Slots::new(1), Waiting::new(2));
        let admit = |authenticated| slots.admit(&waiting, authenticated);
        let mut lurkers: Vec<Ticket> = (0..2).map(|_| admit(false).unwrap()).collect();
        assert_eq!(admit(false).unwrap_err(), Full::Waiting(2));
        let mut member = admit(true).expect("the slot is still free");
        assert_eq!(admit(true).unwrap_err(), Full::Slots(1));
        // A lurker that authenticates finds the slot taken; one that leaves frees its place.
        assert_eq!(lurkers[0].authenticated().unwrap_err(), Full::Slots(1));
        lurkers.pop();
        assert!(admit(false).is_ok());
        member.authenticated().unwrap();
        drop(member);
        lurkers[0].authenticated().unwrap();
        assert!(admit(false).is_ok(), "an authenticated socket left the budget");
    }
}
