//! What every HTTP handler of either surface runs with.

use super::{auth::Authenticator, drain::Draining};
use crate::engine::Engine;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub draining: Draining,
    pub auth: Authenticator,
}

impl AppState {
    /// With `root_token`, every request must carry a valid access token.
    pub fn new(engine: Engine, draining: Draining, root_token: Option<&str>) -> Self {
        Self {
            auth: Authenticator::new(engine.clone(), root_token),
            engine,
            draining,
        }
    }
}
