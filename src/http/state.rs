//! What every HTTP handler of either surface runs with.

use std::sync::Arc;

use super::{
    auth::Authenticator, budget::AppendBudget, drain::Draining, send_buffer::SendBufferStats,
};
use crate::{engine::Engine, limits::Limits};

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub draining: Draining,
    pub auth: Authenticator,
    /// The node's limits ([`crate::limits`]), as handlers apply them.
    pub limits: Arc<Limits>,
    /// In-flight append bytes, shared by both surfaces' appends.
    pub budget: AppendBudget,
    pub send_buffers: Arc<SendBufferStats>,
}

impl AppState {
    /// With `root_token`, every request must carry a valid access token.
    pub fn new(
        engine: Engine,
        draining: Draining,
        root_token: Option<&str>,
        limits: &Limits,
    ) -> Self {
        Self {
            auth: Authenticator::new(engine.clone(), root_token),
            engine,
            draining,
            budget: AppendBudget::new(
                limits.append_inflight_bytes,
                limits.append_admission_timeout,
            ),
            limits: Arc::new(limits.clone()),
            send_buffers: Arc::default(),
        }
    }
}
