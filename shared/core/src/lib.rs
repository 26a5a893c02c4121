//! Hookline's engine: the domain (contacts, scenarios, payloads, retry policy, deliveries),
//! the ports the use cases need, and the use cases themselves.
//!
//! Nothing here knows which cloud, database or HTTP server it runs on: adapters in
//! `hookline-local` (SQLite) and `hookline-aws` implement [`ports`].

#![deny(missing_docs)]

pub mod app;
pub mod domain;
pub mod metrics;
pub mod ports;

#[cfg(feature = "testkit")]
pub mod contract;

pub use app::{AppError, Hookline};
