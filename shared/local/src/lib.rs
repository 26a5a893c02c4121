//! Local mode: the engine on one machine with an embedded SQLite database.
//!
//! - [`SqliteStore`] implements every store port of `hookline-core` on one database file
//!   (WAL mode, `synchronous=FULL`, group commit), the inline path's [`FlowStore`] included:
//!   one commit per event, one per attempt.
//! - [`Workers`] make attempts and end waits when they fall due: fed in memory by
//!   [`LocalDispatch`], and from the rows' due times, so nothing is lost in a restart.
//! - [`receiver`] is a small webhook receiver (`hookline receive`, tests, the demo, benches).
//!
//! [`FlowStore`]: hookline_core::ports::FlowStore

mod db;
mod destinations;
mod flow;
pub mod receiver;
mod store;
mod workers;

pub use db::Db;
pub use destinations::LocalDestinations;
pub use store::{Gauges, SqliteStore};
pub use workers::{Inbox, LocalDispatch, Workers, dispatch_channel};
