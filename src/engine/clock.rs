//! The engine's one clock. Wall-clock time is what gets stored (records' arrival
//! timestamps, creation, deletion and delivery times); waiting uses tokio's clock. A
//! simulated clock derives wall time from tokio's, so under a paused runtime every
//! timestamp is a function of the simulation alone.

use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    /// The operating system's wall clock.
    #[default]
    System,
    /// `start_ms` at `origin`, advancing with tokio's clock.
    Simulated {
        start_ms: u64,
        origin: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock reading `start_ms` now and advancing with tokio's clock.
    pub fn simulated(start_ms: u64) -> Self {
        Self::Simulated {
            start_ms,
            origin: tokio::time::Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match self {
            Self::System => (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64,
            Self::Simulated { start_ms, origin } => start_ms + origin.elapsed().as_millis() as u64,
        }
    }

    /// The time to the millisecond, as catalog entries keep it.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.now_ms()) * 1_000_000)
            .expect("the clock reads a representable time")
    }
}

/// Sleeps until `deadline`, or for ever without one (a `select!` arm that never fires).
pub async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_simulated_clock_follows_tokio_time() {
        let clock = Clock::simulated(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(clock.now_ms(), 3_500);
        assert_eq!(clock.now().unix_timestamp(), 3);
    }

    #[test]
    fn the_system_clock_is_to_the_millisecond() {
        let t = Clock::System.now();
        assert_eq!(t.nanosecond() % 1_000_000, 0);
    }
}
