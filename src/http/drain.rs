//! The switch that tells long-lived sessions (S2's SSE and S2S, blocking reads) the node is
//! shutting down, so that they end and their clients reconnect elsewhere.

use std::sync::Arc;

use tokio::sync::watch;

/// Set when the node begins shutting down.
#[derive(Clone, Debug)]
pub struct Draining(Arc<watch::Sender<bool>>);

impl Default for Draining {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl Draining {
    pub fn start(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once draining has started.
    pub async fn started(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }
}
