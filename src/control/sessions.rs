//! The session tokens AUTHENTICATED hands out: each stands for the credential it
//! was minted for until it expires. Bounded, since any credential may mint them as
//! fast as it can send AUTHENTICATE: a credential keeps its newest
//! `control.max_sessions_per_principal` (minting one more forgets its oldest),
//! and all together keep the newest `control.max_sessions`.

use std::collections::{HashMap, VecDeque};

use crate::auth::{AuthError, Principal};

pub(crate) struct Sessions {
    /// Token → the principal it stands for, whose `expires_at` is when the token
    /// expires (never after the credential it was issued for).
    by_token: HashMap<String, Principal>,
    /// Tokens in the order they were minted, oldest first: the next to forget.
    /// May name tokens forgotten since (skipped, and swept when it grows).
    order: VecDeque<String>,
    /// Live tokens per credential subject.
    per_subject: HashMap<String, usize>,
    max_per_principal: usize,
    max_total: usize,
}

impl Sessions {
    pub fn new(max_per_principal: usize, max_total: usize) -> Sessions {
        Sessions {
            by_token: HashMap::new(),
            order: VecDeque::new(),
            per_subject: HashMap::new(),
            max_per_principal: max_per_principal.max(1),
            max_total: max_total.max(1),
        }
    }

    /// The principal a token stands for; an expired token is forgotten.
    pub fn get(&mut self, token: &str) -> Result<Principal, AuthError> {
        match self.by_token.get(token) {
            Some(p) if !p.expired() => Ok(p.clone()),
            Some(_) => {
                self.forget(token);
                Err(AuthError::Expired)
            }
            None => Err(AuthError::InvalidToken("unknown session token".into())),
        }
    }

    /// A new token for `session` (its `expires_at` set), forgetting expired
    /// tokens, then the credential's oldest past its share, then the oldest of
    /// all past the total.
    pub fn mint(&mut self, session: Principal) -> String {
        self.forget_expired();
        let subject = session.subject.clone();
        if self.per_subject.get(&subject).copied().unwrap_or(0) >= self.max_per_principal {
            let oldest = self
                .order
                .iter()
                .find(|t| self.by_token.get(*t).is_some_and(|p| p.subject == subject))
                .cloned();
            if let Some(oldest) = oldest {
                self.forget(&oldest);
            }
        }
        while self.by_token.len() >= self.max_total {
            match self.order.pop_front() {
                Some(oldest) => self.forget(&oldest),
                None => break,
            }
        }
        let token = uuid::Uuid::new_v4().to_string();
        *self.per_subject.entry(subject).or_default() += 1;
        self.by_token.insert(token.clone(), session);
        self.order.push_back(token.clone());
        // Forgotten tokens left in `order`: swept once they outnumber the live.
        if self.order.len() > 2 * self.by_token.len() + 64 {
            let live = &self.by_token;
            self.order.retain(|t| live.contains_key(t));
        }
        token
    }

    /// Live tokens.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_token.len()
    }

    fn forget(&mut self, token: &str) {
        let Some(p) = self.by_token.remove(token) else {
            return;
        };
        if let Some(n) = self.per_subject.get_mut(&p.subject) {
            *n -= 1;
            if *n == 0 {
                self.per_subject.remove(&p.subject);
            }
        }
    }

    /// Tokens mint in expiry order but for those cut short by their credential's
    /// own expiry: the oldest are checked until one still holds.
    fn forget_expired(&mut self) {
        while let Some(front) = self.order.front() {
            match self.by_token.get(front) {
                Some(p) if !p.expired() => break,
                _ => {
                    if let Some(t) = self.order.pop_front() {
                        self.forget(&t);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::DeviceAllowList;

    fn session(subject: &str, expires_in: i64) -> Principal {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        Principal {
            subject: subject.into(),
            scopes: Default::default(),
            devices: DeviceAllowList::any(),
            expires_at: Some((now + expires_in) as u64),
        }
    }

    #[test]
    fn a_credential_keeps_its_newest_tokens_and_all_keep_the_newest() {
        let mut s = Sessions::new(2, 3);
        let a: Vec<String> = (0..3).map(|_| s.mint(session("a", 60))).collect();
        assert!(
            matches!(s.get(&a[0]), Err(AuthError::InvalidToken(_))),
            "a's oldest forgotten"
        );
        assert!(s.get(&a[1]).is_ok() && s.get(&a[2]).is_ok());
        let b: Vec<String> = (0..2).map(|_| s.mint(session("b", 60))).collect();
        assert_eq!(s.len(), 3);
        assert!(s.get(&a[1]).is_err(), "the oldest of all forgotten");
        assert!(s.get(&a[2]).is_ok() && s.get(&b[0]).is_ok() && s.get(&b[1]).is_ok());
        for _ in 0..10_000 {
            s.mint(session("a", 60));
        }
        assert_eq!(s.len(), 3);
        assert!(s.order.len() < 200, "{}", s.order.len());
    }

    #[test]
    fn expired_tokens_are_refused_and_forgotten() {
        let mut s = Sessions::new(10, 10);
        let old = s.mint(session("a", -1));
        assert!(matches!(s.get(&old), Err(AuthError::Expired)));
        let _ = s.mint(session("a", -1));
        s.mint(session("a", 60));
        assert_eq!(s.len(), 1);
    }
}
