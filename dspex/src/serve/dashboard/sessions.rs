//! The dashboard's signed-in browsers: a bounded table of random session ids, each with its
//! role and the time it ends.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Signed in with the read token: sees everything, changes nothing.
    Read,
    /// Signed in with the admin token: also edits and rolls back.
    Admin,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

/// At most `limit` sessions; opening one more ends the oldest.
pub(crate) struct Sessions {
    by_id: HashMap<String, (Role, Instant)>,
    /// Ids, oldest first.
    order: VecDeque<String>,
    limit: usize,
    lifetime: Duration,
}

impl Sessions {
    pub(crate) fn new(limit: usize, lifetime: Duration) -> Self {
        Self {
            by_id: HashMap::new(),
            order: VecDeque::new(),
            limit,
            lifetime,
        }
    }

    /// Opens a session with `role`: its id (128 random bits, hex), or `None` when the system
    /// has no randomness to give.
    pub(crate) fn open(&mut self, role: Role) -> Option<String> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        while let Some(oldest) = self.order.front() {
            let expired = self.by_id.get(oldest).is_none_or(|(_, ends)| *ends <= now);
            if !expired && self.order.len() < self.limit {
                break;
            }
            if let Some(oldest) = self.order.pop_front() {
                self.by_id.remove(&oldest);
            }
        }
        self.by_id.insert(id.clone(), (role, now + self.lifetime));
        self.order.push_back(id.clone());
        Some(id)
    }

    /// The role of a session that is open and not over.
    pub(crate) fn role(&self, id: &str) -> Option<Role> {
        let (role, ends) = self.by_id.get(id)?;
        (Instant::now() < *ends).then_some(*role)
    }

    /// Ends a session.
    pub(crate) fn close(&mut self, id: &str) {
        if self.by_id.remove(id).is_some() {
            self.order.retain(|other| other != id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MAX_SESSIONS, SESSION_LIFETIME};
    use super::*;

    #[test]
    fn at_the_bound_every_session_stays_and_one_more_ends_the_oldest() {
        let mut sessions = Sessions::new(MAX_SESSIONS, SESSION_LIFETIME);
        let ids: Vec<String> = (0..MAX_SESSIONS)
            .map(|_| sessions.open(Role::Read).expect("randomness"))
            .collect();
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(ids.iter().all(|id| sessions.role(id) == Some(Role::Read)));
        let newest = sessions.open(Role::Admin).expect("randomness");
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions.role(&ids[0]), None, "the oldest session ended");
        assert_eq!(sessions.role(&ids[1]), Some(Role::Read));
        assert_eq!(sessions.role(&newest), Some(Role::Admin));
    }

    #[test]
    fn a_closed_or_expired_session_has_no_role_and_ids_differ() {
        let mut sessions = Sessions::new(4, Duration::ZERO);
        let expired = sessions.open(Role::Admin).expect("randomness");
        assert_eq!(sessions.role(&expired), None);
        let mut sessions = Sessions::new(4, SESSION_LIFETIME);
        let a = sessions.open(Role::Admin).expect("randomness");
        let b = sessions.open(Role::Admin).expect("randomness");
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        sessions.close(&a);
        assert_eq!(sessions.role(&a), None);
        assert_eq!(sessions.role(&b), Some(Role::Admin));
        assert_eq!(sessions.order.len(), 1, "closing leaves nothing behind");
    }
}
