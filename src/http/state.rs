//! What every HTTP handler of either surface runs with.

use std::sync::Arc;

use super::{auth::Authenticator, drain::Draining};
use crate::{engine::Engine, storage::counting::StoreCounters};

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub counters: Arc<StoreCounters>,
    pub draining: Draining,
    pub auth: Authenticator,
}

impl AppState {
    /// With `root_token`, every request must carry a valid access token.
    pub fn new(
        engine: Engine,
        counters: Arc<StoreCounters>,
        draining: Draining,
        root_token: Option<&str>,
    ) -> Self {
        Self {
            auth: Authenticator::new(engine.clone(), root_token),
            engine,
            counters,
            draining,
        }
    }
}
