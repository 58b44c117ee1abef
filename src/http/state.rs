//! What every HTTP handler of either surface runs with.

use std::{str::FromStr, sync::Arc};

use s2_common::location::LocationName;

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
    /// The deployment's one location (S2's locations): where its data lives.
    pub location: LocationName,
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
            location: LocationName::from_str(LOCAL_LOCATION).expect("a valid location name"),
        }
    }

    /// The same state in the location `location`.
    pub fn with_location(self, location: LocationName) -> Self {
        Self { location, ..self }
    }
}

/// The location of a deployment on a local directory.
pub const LOCAL_LOCATION: &str = "local";

/// The location of a deployment on `bucket`: its name, with any character a location name
/// may not hold replaced by `-`, cut to the longest location name.
pub fn bucket_location(bucket: &str) -> LocationName {
    let name: String = bucket
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(s2_common::caps::MAX_LOCATION_NAME_LEN)
        .collect();
    LocationName::from_str(&name)
        .unwrap_or_else(|_| LocationName::from_str("s3").expect("a valid location name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_location_is_a_valid_location_name() {
        assert_eq!(
            bucket_location("my-bucket.eu").as_ref() as &str,
            "my-bucket.eu"
        );
        assert_eq!(
            bucket_location("Legacy_Bucket").as_ref() as &str,
            "Legacy-Bucket"
        );
        let long = "b".repeat(100);
        assert_eq!(
            bucket_location(&long).len(),
            s2_common::caps::MAX_LOCATION_NAME_LEN
        );
        assert_eq!(bucket_location("").as_ref() as &str, "s3");
    }
}
