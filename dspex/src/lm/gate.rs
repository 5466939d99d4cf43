//! The LM client's concurrency limit and request count: every request, to whatever LM, holds
//! one of a bounded number of slots while it is in flight, and is counted as it goes out.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{Error, Result};

/// The slots of one client and the count of requests sent through them.
#[derive(Debug)]
pub(super) struct Gate {
    slots: Semaphore,
    sent: AtomicU64,
}

impl Gate {
    /// A gate of `slots` places.
    pub(super) fn new(slots: usize) -> Self {
        Self {
            slots: Semaphore::new(slots),
            sent: AtomicU64::new(0),
        }
    }

    /// Waits for a place, then counts one request sent; the request holds the place until the
    /// permit drops.
    pub(super) async fn enter(&self) -> Result<SemaphorePermit<'_>> {
        let permit = self
            .slots
            .acquire()
            .await
            .map_err(|_| Error::internal("the LM client's request slots are closed"))?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(permit)
    }

    /// How many requests went through.
    pub(super) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}
