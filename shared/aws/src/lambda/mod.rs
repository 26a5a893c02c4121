//! What every Lambda binary shares: settings read once from the environment, clients built
//! once per cold start, and the SQS batch handler.
//!
//! The parts: `settings.rs` (the environment), `engine.rs` (clients, ports, cold start),
//! `batch.rs` (SQS and stream batches), `functions.rs` (each function's `main`).

mod batch;
mod engine;
mod functions;
mod settings;

pub use batch::*;
pub use engine::*;
pub use functions::*;
pub use settings::*;
