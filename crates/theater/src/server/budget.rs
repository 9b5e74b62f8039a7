//! The bytes of frames the server holds in memory: frames being read,
//! until they are decoded, and frames waiting to be written, until the
//! client takes them.
//!
//! Every connection has a small allowance of its own, so short frames (a
//! `hello`, a `ping`, most answers) never wait. Anything beyond it is drawn
//! from one budget shared by all connections, so the server's memory is
//! bounded by the budget plus the allowances, however many clients announce
//! large frames at once. A frame that does not fit waits for bytes to be
//! returned; they come back when frames are decoded or written, and a
//! client that stalls mid-frame is cut off after the frame timeout.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes each connection may hold without drawing on the shared budget.
/// Guards against one client's large frames delaying another's small
/// ones: a `hello` or `ping` never waits for the budget.
pub const CONNECTION_ALLOWANCE: usize = 64 * 1024;

/// Bytes held for one frame; returned when dropped.
pub type Charge = OwnedSemaphorePermit;

/// The shared part, one per server.
pub struct Budget {
    shared: Arc<Semaphore>,
}

impl Budget {
    /// A budget lending at most `bytes` at once across all connections.
    pub fn new(bytes: usize) -> Self {
        Self {
            shared: Arc::new(Semaphore::new(bytes)),
        }
    }

    /// A new connection's view: its own allowance, then the shared budget.
    pub fn connection(&self) -> ConnectionBudget {
        ConnectionBudget {
            own: Arc::new(Semaphore::new(CONNECTION_ALLOWANCE)),
            shared: self.shared.clone(),
        }
    }
}

/// What one connection may hold: its own allowance, then the shared budget.
#[derive(Clone)]
pub struct ConnectionBudget {
    own: Arc<Semaphore>,
    shared: Arc<Semaphore>,
}

impl ConnectionBudget {
    /// Holds `bytes` for a frame, waiting until they are free. Callers keep
    /// frames within the protocol's frame limit, which the server's
    /// configuration keeps within the shared budget, so the wait ends.
    pub async fn charge(&self, bytes: usize) -> Charge {
        let bytes = u32::try_from(bytes).expect("frames are limited far below 4 GiB");
        if let Ok(charge) = self.own.clone().try_acquire_many_owned(bytes) {
            return charge;
        }
        self.shared
            .clone()
            .acquire_many_owned(bytes)
            .await
            .expect("the budget is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn small_frames_use_the_allowance_and_large_ones_wait_for_the_budget() {
        let budget = Budget::new(100_000);
        let (a, b) = (budget.connection(), budget.connection());
        let big = a.charge(100_000).await;
        // Shared bytes are gone, yet small frames of both still pass.
        let _small_a = a.charge(100).await;
        let _small_b = b.charge(CONNECTION_ALLOWANCE).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), b.charge(1)).await;
        assert!(
            waiting.is_err(),
            "b's allowance is spent and the budget lent out"
        );
        drop(big);
        let _ = tokio::time::timeout(Duration::from_secs(5), b.charge(1))
            .await
            .expect("returned bytes are lent again");
    }
}
