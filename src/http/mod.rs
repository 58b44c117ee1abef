//! Plumbing both HTTP surfaces ([`crate::api`], S2's; [`crate::redis::http`], the plate
//! surface) share. Knows the engine, no surface: nothing here renders a surface's error
//! envelope, and nothing here imports a surface.
//!
//! - [`state`]: [`AppState`], what every handler runs with (engine, store counters,
//!   draining, the authenticator).
//! - [`auth`]: access tokens: [`auth::Authenticator`] turns an `Authorization` header into
//!   a [`auth::Caller`], whose [`auth::Grant`] says what it may do.
//! - [`error`]: [`AuthError`], how authentication and authorization fail; each surface
//!   maps it to its own codes.
//! - [`drain`]: [`Draining`], the shutdown switch long-lived sessions watch.
//! - [`budget`]: [`budget::AppendBudget`], the node's in-flight append bytes, which both
//!   surfaces' appends are admitted against; [`body`]: reading a unary request body within
//!   the size and time limits; [`send_buffer`]: a read session's bounded send buffer and
//!   its cut-off for clients that stop reading. The limits themselves are
//!   [`crate::limits`].

pub mod auth;
pub(crate) mod body;
pub(crate) mod budget;
pub(crate) mod drain;
pub(crate) mod error;
pub(crate) mod send_buffer;
pub(crate) mod state;

pub use drain::Draining;
pub use error::AuthError;
pub use state::AppState;
