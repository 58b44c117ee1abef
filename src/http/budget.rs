//! The node-wide budget of in-flight append bytes (`--append-inflight-bytes`): an append
//! is admitted for its size before its bytes are read or handed to the engine, and gives
//! the bytes back when it is answered (acked or refused). Under overload, admission waits
//! (and the request's body is not read meanwhile, so the client meets flow control), and
//! after `--append-admission-timeout` the append is refused unapplied; each surface
//! renders that refusal as its own retryable error.
//!
//! Invariant: the bytes admitted and not yet given back never exceed the budget, so what
//! the node holds of append bodies is bounded by it (plus what the HTTP stack buffers
//! before a body is read, bounded per connection by its flow-control windows).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone, Debug)]
pub struct AppendBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    permits: Arc<Semaphore>,
    total: usize,
    timeout: Duration,
    refused: AtomicU64,
}

/// Bytes admitted for one append; given back when dropped.
#[derive(Debug)]
pub struct AppendPermit(OwnedSemaphorePermit);

/// Admission waited its full timeout: nothing of the request was read or applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub waited: Duration,
}

impl AppendBudget {
    pub fn new(total: usize, timeout: Duration) -> Self {
        // Semaphores count at most `MAX_PERMITS`; one byte is the least that can admit
        // anything.
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(total)),
                total,
                timeout,
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// Admits `bytes`, waiting up to the admission timeout for them to be free. A request
    /// larger than the whole budget is admitted for the whole budget (so it waits for
    /// every other append to be answered) rather than never. Waiters are admitted in
    /// arrival order, so a large append is not starved by small ones.
    pub async fn admit(&self, bytes: usize) -> Result<AppendPermit, Refused> {
        let n = u32::try_from(bytes.clamp(1, self.inner.total)).unwrap_or(u32::MAX);
        let acquire = self.inner.permits.clone().acquire_many_owned(n);
        match tokio::time::timeout(self.inner.timeout, acquire).await {
            Ok(Ok(permit)) => Ok(AppendPermit(permit)),
            // The semaphore is never closed; treat it like a timeout if it were.
            Ok(Err(_)) | Err(_) => {
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                Err(Refused {
                    waited: self.inner.timeout,
                })
            }
        }
    }

    /// Bytes admitted and not yet given back.
    pub fn in_flight(&self) -> usize {
        self.inner.total - self.inner.permits.available_permits()
    }

    pub fn total(&self) -> usize {
        self.inner.total
    }

    /// Appends refused after waiting the admission timeout, since the node started.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }
}

impl AppendPermit {
    /// Gives back what was admitted beyond `bytes` (a body of unknown length is admitted
    /// for the largest body allowed, then shrunk to what it turned out to be).
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = bytes.max(1);
        if self.0.num_permits() > keep {
            drop(self.0.split(self.0.num_permits() - keep));
        }
    }

    pub fn bytes(&self) -> usize {
        self.0.num_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admission_waits_for_answers_then_refuses() {
        let budget = AppendBudget::new(100, Duration::from_secs(2));
        let a = budget.admit(60).await.unwrap();
        assert_eq!(budget.in_flight(), 60);
        // 50 more do not fit: the wait ends when `a` is answered...
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.admit(50).await.map(|p| p.bytes()) }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(a);
        assert_eq!(waiter.await.unwrap(), Ok(50));
        // ...or with a refusal after the timeout, nothing admitted.
        let _b = budget.admit(100).await.unwrap();
        let refused = budget.admit(1).await.unwrap_err();
        assert_eq!(refused.waited, Duration::from_secs(2));
        assert_eq!(budget.refused(), 1);
        assert_eq!(budget.in_flight(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn oversized_appends_take_the_whole_budget_and_permits_shrink() {
        let budget = AppendBudget::new(100, Duration::from_secs(1));
        let mut p = budget.admit(1_000).await.unwrap();
        assert_eq!(p.bytes(), 100);
        p.shrink_to(30);
        assert_eq!(budget.in_flight(), 30);
        p.shrink_to(0);
        assert_eq!(budget.in_flight(), 1, "a permit keeps at least one byte");
        drop(p);
        assert_eq!(budget.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_admitted_in_arrival_order() {
        let budget = AppendBudget::new(100, Duration::from_secs(10));
        let held = budget.admit(100).await.unwrap();
        let big = tokio::spawn({
            let budget = budget.clone();
            async move { budget.admit(100).await.is_ok() }
        });
        tokio::task::yield_now().await;
        // A small append behind a large one waits its turn instead of overtaking it.
        let small = tokio::spawn({
            let budget = budget.clone();
            async move { budget.admit(1).await.map(|p| p.bytes()) }
        });
        tokio::task::yield_now().await;
        drop(held);
        assert!(big.await.unwrap());
        assert_eq!(small.await.unwrap(), Ok(1));
    }
}
