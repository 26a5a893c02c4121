//! One SQLite database file shared by the stores and the queue.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rusqlite::Connection;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash   TEXT PRIMARY KEY,          -- SHA-256 of the key; the key itself is never stored
    account    INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS scenarios (
    id           TEXT PRIMARY KEY,
    account      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    def          TEXT NOT NULL,           -- the definition as submitted (JSON)
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS scenarios_by_account ON scenarios (account, id);
CREATE INDEX IF NOT EXISTS scenarios_by_trigger ON scenarios (account, status, trigger_type);
CREATE TABLE IF NOT EXISTS contacts (
    account    INTEGER NOT NULL,
    id         INTEGER NOT NULL,
    snapshot   TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, id)
);
CREATE TABLE IF NOT EXISTS events (
    account    INTEGER NOT NULL,
    event_id   TEXT NOT NULL,
    answer     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account, event_id)
);
CREATE TABLE IF NOT EXISTS enrollments (
    id          TEXT PRIMARY KEY,
    account     INTEGER NOT NULL,
    scenario_id TEXT NOT NULL,
    contact_id  INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    step_id     TEXT,
    state       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- one row per (scenario, contact) that entered a scenario without re-entry
CREATE TABLE IF NOT EXISTS entries (
    scenario_id   TEXT NOT NULL,
    contact_id    INTEGER NOT NULL,
    enrollment_id TEXT NOT NULL,
    PRIMARY KEY (scenario_id, contact_id)
);
CREATE TABLE IF NOT EXISTS passes (
    key         TEXT PRIMARY KEY,         -- enrollment:seq:step
    account     INTEGER NOT NULL,
    scenario_id TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    contact_id  INTEGER NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS passes_by_step ON passes (scenario_id, step_id, contact_id);
CREATE TABLE IF NOT EXISTS deliveries (
    id              TEXT PRIMARY KEY,
    account         INTEGER NOT NULL,
    scenario_id     TEXT NOT NULL,
    step_id         TEXT NOT NULL,
    contact_id      INTEGER NOT NULL,
    handoff         TEXT NOT NULL,
    url             TEXT NOT NULL,
    headers         TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    deadline        INTEGER NOT NULL,
    next_attempt_at INTEGER,
    attempts        TEXT NOT NULL,        -- JSON array of attempts
    attempt_count   INTEGER NOT NULL,
    handed_back     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_step ON deliveries (scenario_id, step_id, created_at, id);
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key  TEXT NOT NULL UNIQUE,
    task        TEXT NOT NULL,
    due_at      INTEGER NOT NULL,
    lease_until INTEGER,
    tries       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_due ON jobs (due_at);
"#;

/// The database: one connection behind a mutex (SQLite has one writer anyway), used from
/// blocking threads so the async workers never wait on disk.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    pub fn open(path: &Path) -> anyhow::Result<Db> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA).context("creating the schema")?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection, on a blocking thread.
    pub async fn call<R, F>(&self, f: F) -> anyhow::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<R> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| anyhow::anyhow!("database mutex poisoned"))?;
            f(&mut guard)
        })
        .await
        .context("database task")?
    }
}
