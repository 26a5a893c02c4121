//! Local mode: the engine on one machine with an embedded SQLite database.
//!
//! - [`SqliteStore`] implements every store port of `hookline-core` on one database file
//!   (WAL mode, `synchronous=NORMAL`: a killed process loses nothing it committed).
//! - [`SqliteQueue`] is the durable queue: a `jobs` table with a due time and a lease, so
//!   waits and retries of any length survive a restart.
//! - [`Runner`] leases due jobs and runs them on the engine, many at once.
//! - [`receiver`] is a small webhook receiver (`hookline receive`, tests, the demo, benches).

mod db;
mod queue;
pub mod receiver;
mod runner;
mod store;

pub use db::Db;
pub use queue::{LeasedJob, SqliteQueue};
pub use runner::Runner;
pub use store::SqliteStore;
