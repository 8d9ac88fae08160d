//! What ends a connection from the server's side though its client did nothing
//! wrong on the wire: a connection without a credential must authenticate in-band
//! within `http.auth_deadline_ms`; one with a credential that expires (a JWT, a
//! session token) is closed when it does; every connection closes when the server
//! shuts down.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, Principal};

/// Why a connection must end though its client did nothing wrong on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// Nothing to wait for: credentials are off, or the credential never expires.
    None,
    /// Not authenticated yet; it must be by then.
    Authenticate(Instant),
    /// Authenticated with a credential that expires then.
    Expires(Instant),
}

impl Deadline {
    /// The deadline of a connection opened at `opened`, now holding `principal`;
    /// `authenticate_within` when credentials are required, `None` when they are off.
    pub fn of(
        authenticate_within: Option<Duration>,
        principal: Option<&Principal>,
        opened: Instant,
    ) -> Deadline {
        match (principal, authenticate_within) {
            (None, Some(within)) => Deadline::Authenticate(opened + within),
            (None, None) => Deadline::None,
            (Some(p), _) => match p.time_left() {
                Some(left) => Deadline::Expires(Instant::now() + left),
                None => Deadline::None,
            },
        }
    }

    fn at(self) -> Option<Instant> {
        match self {
            Deadline::None => None,
            Deadline::Authenticate(at) | Deadline::Expires(at) => Some(at),
        }
    }

    /// What to tell the client before closing with [`super::POLICY`]; each front
    /// end turns it into its own wire error.
    pub fn error(self) -> AuthError {
        match self {
            Deadline::Expires(_) => AuthError::Expired,
            _ => AuthError::NotAuthenticated,
        }
    }
}

/// Why [`Ends::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The deadline passed: tell the client [`Deadline::error`] and close.
    Deadline(Deadline),
    /// The server is shutting down: close with 1001.
    Shutdown,
}

/// A connection's deadline and the server's shutdown, waited on together.
pub struct Ends {
    deadline: Deadline,
    /// Boxed, and only while there is a deadline: most connections have none,
    /// and an idle one should not carry a timer it never uses.
    timer: Option<Pin<Box<Sleep>>>,
    shutdown: CancellationToken,
}

impl Ends {
    pub fn new(deadline: Deadline, shutdown: CancellationToken) -> Ends {
        let mut ends = Ends {
            deadline: Deadline::None,
            timer: None,
            shutdown,
        };
        ends.set(deadline);
        ends
    }

    /// Replaces the deadline (a connection authenticated, or took a new credential).
    pub fn set(&mut self, deadline: Deadline) {
        self.deadline = deadline;
        match (deadline.at(), &mut self.timer) {
            (None, timer) => *timer = None,
            (Some(at), Some(timer)) => timer.as_mut().reset(at),
            (Some(at), timer) => *timer = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// Resolves when the deadline passes or the server shuts down; cancel-safe.
    pub async fn wait(&mut self) -> End {
        let timer = Timer(self.timer.as_mut().map(|t| t.as_mut()));
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => End::Shutdown,
            _ = timer => End::Deadline(self.deadline),
        }
    }
}

/// The deadline's timer, or never when there is none. A plain future rather than
/// an `async` block: an idle connection holds it while it waits.
struct Timer<'a>(Option<Pin<&'a mut Sleep>>);

impl Future for Timer<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => std::task::Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::DeviceAllowList;

    fn principal(expires_in: Option<u64>) -> Principal {
        Principal {
            subject: "p".into(),
            scopes: Default::default(),
            devices: DeviceAllowList::any(),
            expires_at: expires_in.map(|s| jsonwebtoken::get_current_timestamp() + s),
        }
    }

    #[test]
    fn deadlines_follow_the_credential() {
        let now = Instant::now();
        let ten = Some(Duration::from_secs(10));
        assert_eq!(Deadline::of(None, None, now), Deadline::None);
        assert_eq!(
            Deadline::of(ten, None, now),
            Deadline::Authenticate(now + Duration::from_secs(10))
        );
        assert_eq!(Deadline::of(ten, Some(&principal(None)), now), Deadline::None);
        assert!(matches!(
            Deadline::of(ten, Some(&principal(Some(60))), now),
            Deadline::Expires(at) if at > now + Duration::from_secs(50)
        ));
    }

    #[tokio::test]
    async fn ends_wait_for_the_deadline_or_the_shutdown() {
        let shutdown = CancellationToken::new();
        let far = Deadline::Authenticate(Instant::now() + Duration::from_secs(10));
        let mut ends = Ends::new(far, shutdown.clone());
        let r = tokio::time::timeout(Duration::from_millis(100), ends.wait()).await;
        assert!(r.is_err(), "a deadline ten seconds away passed at once");
        let near = Deadline::Expires(Instant::now() + Duration::from_millis(20));
        ends.set(near);
        assert_eq!(ends.wait().await, End::Deadline(near));
        ends.set(Deadline::None);
        shutdown.cancel();
        assert_eq!(ends.wait().await, End::Shutdown);
    }
}
