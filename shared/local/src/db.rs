//! One SQLite database file shared by the stores and the queue.

use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash   TEXT PRIMARY KEY,          -- SHA-256 of the key; the key itself is never stored
    account    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    prefix     TEXT,                      -- hk_ + 8 characters, to list and revoke (NULL: made before schema 1)
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS scenarios (
    id           TEXT PRIMARY KEY,
    account      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    def          TEXT NOT NULL,           -- the definition as submitted (JSON)
    secrets      TEXT NOT NULL DEFAULT '{}', -- signing secrets by step id (JSON), schema 2
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS scenarios_by_account ON scenarios (account, id);
CREATE INDEX IF NOT EXISTS scenarios_by_trigger ON scenarios (account, status, trigger_type);
CREATE TABLE IF NOT EXISTS contacts (
    account     INTEGER NOT NULL,
    id          INTEGER NOT NULL,
    snapshot    TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    occurred_at INTEGER,                  -- when the snapshot was taken (schema 3; NULL: before)
    PRIMARY KEY (account, id)
);
-- the memos of a contact's last events, by slot (schema 4; ContactStore::put, the queued path)
CREATE TABLE IF NOT EXISTS contact_memos (
    account    INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    slot       INTEGER NOT NULL,
    memo       TEXT NOT NULL,             -- {"e": event id, "s": [scenario ids]}
    PRIMARY KEY (account, contact_id, slot)
) WITHOUT ROWID;
-- pending occurrences of time-based triggers (schema 3), fired by the workers' timers
CREATE TABLE IF NOT EXISTS occurrences (
    scenario_id TEXT NOT NULL,
    contact_id  INTEGER NOT NULL,
    date        TEXT NOT NULL,            -- the nominal date (YYYY-MM-DD): the occurrence's identity
    account     INTEGER NOT NULL,
    at          INTEGER NOT NULL,         -- when it fires (ms)
    PRIMARY KEY (scenario_id, contact_id, date)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS occurrences_due ON occurrences (at);
CREATE INDEX IF NOT EXISTS occurrences_by_contact ON occurrences (account, contact_id);
-- activations of time-based scenarios still scheduling their contacts' occurrences
CREATE TABLE IF NOT EXISTS backfills (
    scenario_id TEXT PRIMARY KEY,
    account     INTEGER NOT NULL,
    cursor      TEXT                      -- the next page starts after this contact id
);
-- how far the sweep of occurrences went (the AWS tick's logic, kept on both adapters)
CREATE TABLE IF NOT EXISTS sweep (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    minute INTEGER NOT NULL,
    cursor TEXT
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
    updated_at  INTEGER NOT NULL,
    entry_key   TEXT,                     -- scenario:contact without re-entry (unique), else NULL
    due_at      INTEGER,                  -- state 'waiting': when the wait ends
    resume_step TEXT                      -- state 'waiting': where the contact goes on
);
CREATE UNIQUE INDEX IF NOT EXISTS enrollments_entry ON enrollments (entry_key);
CREATE INDEX IF NOT EXISTS enrollments_due ON enrollments (due_at) WHERE state = 'waiting';
-- the passes of conditions and waits; a webhook step's pass is its delivery
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
    attempt_count   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_step ON deliveries (scenario_id, step_id, created_at, id);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
"#;

type Reply = Box<dyn FnOnce(Option<&anyhow::Error>) + Send>;
type Job = Box<dyn FnOnce(&mut Connection) -> Reply + Send>;

/// The schema version this code writes (`PRAGMA user_version`).
const VERSION: i64 = 4;

/// Version 0 (up to the queued local path) to 1 (the inline path): the re-entry rule moves
/// from `entries` into `enrollments.entry_key`; keys get a prefix and can be revoked; queued advances become waiting enrollments
/// (due rows, found by the timers); pass rows of webhook steps go (the delivery is the pass);
/// `jobs` and `entries` are dropped. Queued deliveries need nothing: their rows are due already.
const MIGRATE_0_TO_1: &str = r#"
ALTER TABLE api_keys ADD COLUMN prefix TEXT;
ALTER TABLE api_keys ADD COLUMN revoked_at INTEGER;
ALTER TABLE enrollments ADD COLUMN entry_key TEXT;
ALTER TABLE enrollments ADD COLUMN due_at INTEGER;
ALTER TABLE enrollments ADD COLUMN resume_step TEXT;
UPDATE enrollments SET entry_key = scenario_id || ':' || contact_id
    WHERE id IN (SELECT enrollment_id FROM entries);
UPDATE enrollments SET state = 'waiting',
    due_at = (SELECT j.due_at FROM jobs j WHERE j.dedupe_key = 'adv:' || enrollments.id || ':' || enrollments.seq),
    resume_step = (SELECT json_extract(j.task, '$.step_id') FROM jobs j WHERE j.dedupe_key = 'adv:' || enrollments.id || ':' || enrollments.seq)
    WHERE state IN ('active', 'awaiting_delivery')
      AND EXISTS (SELECT 1 FROM jobs j WHERE j.dedupe_key = 'adv:' || enrollments.id || ':' || enrollments.seq);
DELETE FROM passes WHERE EXISTS
    (SELECT 1 FROM deliveries d WHERE d.scenario_id = passes.scenario_id AND d.step_id = passes.step_id);
DROP TABLE jobs;
DROP TABLE entries;
"#;

/// Version 1 to 2: the signing secrets of webhook steps (steps stored before have none until
/// their secret is rotated).
const MIGRATE_1_TO_2: &str = "ALTER TABLE scenarios ADD COLUMN secrets TEXT NOT NULL DEFAULT '{}';";

/// Version 2 to 3: time-based triggers (the `occurrences`, `backfills` and `sweep` tables
/// come from the schema itself) and snapshots applied in the order they occurred.
const MIGRATE_2_TO_3: &str = "ALTER TABLE contacts ADD COLUMN occurred_at INTEGER;";

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > VERSION {
        anyhow::bail!("this database was written by a newer hookline (schema {version})");
    }
    if version == VERSION {
        return Ok(()); // nothing to write (`keys list` beside a busy `serve` waits for nothing)
    }
    let tx = conn.transaction()?;
    let old = version == 0
        && tx
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
    if old {
        tx.execute_batch(MIGRATE_0_TO_1)
            .context("migrating the database to schema 1")?;
        tracing::info!("database migrated to schema 1 (inline path)");
    }
    if old || version == 1 {
        tx.execute_batch(MIGRATE_1_TO_2)
            .context("migrating the database to schema 2")?;
        tracing::info!("database migrated to schema 2 (signing secrets)");
    }
    let has_contacts = tx
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'contacts'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if has_contacts && version < 3 {
        tx.execute_batch(MIGRATE_2_TO_3)
            .context("migrating the database to schema 3")?;
        tracing::info!("database migrated to schema 3 (time-based triggers)");
    }
    tx.execute_batch(SCHEMA).context("creating the schema")?;
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Most operations folded into one transaction.
const MAX_BATCH: usize = 512;

/// The database: one connection owned by one thread that **group-commits**. Callers send
/// operations over a channel; the thread runs every waiting operation inside one transaction,
/// each in its own savepoint (a failing operation rolls back only itself), commits once, and
/// only then answers each caller. A caller therefore never sees a write that is not durable,
/// and a burst of small operations costs one commit instead of hundreds.
#[derive(Clone)]
pub struct Db {
    jobs: std::sync::mpsc::Sender<Job>,
    /// Read-only connections, each used by one reader at a time (see [`Db::read`]).
    readers: std::sync::Arc<Readers>,
    /// The checkpointer runs while a clone of this lives.
    _alive: std::sync::Arc<()>,
}

impl Db {
    pub fn open(path: &Path) -> anyhow::Result<Db> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk before anyone is answered (a 202 survives a power cut);
        // group commit shares each sync among every operation of a batch.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(64);
        let mut conn = conn;
        migrate(&mut conn)?;
        // Checkpoints run on their own thread and connection, not after a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let alive = std::sync::Arc::new(());
        let restart = std::sync::Arc::default();
        start_checkpointer(
            path,
            std::sync::Arc::downgrade(&alive),
            std::sync::Arc::clone(&restart),
        )?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("hookline-db".into())
            .spawn(move || serve(conn, queue, restart))
            .context("starting the database thread")?;
        Ok(Db {
            jobs,
            readers: std::sync::Arc::new(Readers::start(path)?),
            _alive: alive,
        })
    }

    /// Runs `f` atomically on the database thread; answers once its batch is committed.
    pub async fn call<R, F>(&self, f: F) -> anyhow::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<R> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = in_savepoint(conn, f);
            Box::new(move |commit_error: Option<&anyhow::Error>| {
                let result = match commit_error {
                    Some(e) => Err(anyhow::anyhow!("commit failed: {e:#}")),
                    None => result,
                };
                let _ = answer.send(result);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the database thread has stopped"))?;
        answered
            .await
            .context("the database thread dropped an operation")?
    }
}

/// How often the checkpointer copies the log into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// Past this many frames in the log, the writer finishes the checkpoint itself between two
/// batches, so that its next transaction starts the log again from its beginning.
const WAL_RESTART_FRAMES: i64 = 4_096;
/// The log file is truncated back to this size when it starts again.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The checkpointer: PASSIVE checkpoints on its own connection (they never block the writer)
/// every [`CHECKPOINT_EVERY`]. Under steady load the log never gets fully copied between two
/// commits, so it would grow for ever: past [`WAL_RESTART_FRAMES`] the checkpointer asks the
/// writer (`restart`) to copy the few frames left itself, after answering a batch.
/// It stops when the database has been dropped.
fn start_checkpointer(
    path: &Path,
    alive: std::sync::Weak<()>,
    restart: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let conn = Connection::open(path)?;
    std::thread::Builder::new()
        .name("hookline-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                if alive.upgrade().is_none() {
                    break;
                }
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                    Ok(frames) if frames > WAL_RESTART_FRAMES => {
                        restart.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
                }
            }
        })
        .context("starting the checkpoint thread")?;
    Ok(())
}

/// The read side: [`READERS`] threads, each with its own read-only connection (`query_only`),
/// taking reads from one channel. WAL lets them read while the writer writes.
pub(crate) struct Readers {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<ReadJob>>,
}

type ReadJob = Box<dyn FnOnce(&mut Connection) + Send>;

/// Reader threads (reads are short; two let a slow one not hold up the rest).
const READERS: usize = 2;

impl Readers {
    fn start(path: &Path) -> anyhow::Result<Readers> {
        let (tx, rx) = std::sync::mpsc::channel::<ReadJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..READERS {
            let conn = Connection::open(path)
                .with_context(|| format!("opening database {}", path.display()))?;
            conn.pragma_update(None, "query_only", true)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.set_prepared_statement_cache_capacity(64);
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("hookline-read-{i}"))
                .spawn(move || {
                    let mut conn = conn;
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut conn),
                            Err(_) => return, // the database was dropped
                        }
                    }
                })
                .context("starting a reader thread")?;
        }
        Ok(Readers {
            jobs: std::sync::Mutex::new(tx),
        })
    }
}

impl Db {
    /// Runs the read-only `f` on a reader thread's connection, off the database thread, inside
    /// one read transaction (every query of `f` sees the same committed state).
    pub async fn read<R, F>(&self, f: F) -> anyhow::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<R> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let result = (|| {
                exec(conn, "BEGIN", [])?;
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut *conn)))
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a database read panicked")));
                let _ = exec(conn, "COMMIT", []);
                result
            })();
            let _ = answer.send(result);
        });
        self.readers
            .jobs
            .lock()
            .map_err(|_| anyhow::anyhow!("the reader threads have stopped"))?
            .send(job)
            .map_err(|_| anyhow::anyhow!("the reader threads have stopped"))?;
        answered.await.context("a reader thread dropped a read")?
    }
}

/// `execute` through the prepared-statement cache (SQL is parsed once per connection).
pub(crate) fn exec(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the prepared-statement cache.
pub(crate) fn row<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

fn in_savepoint<R>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> anyhow::Result<R>,
) -> anyhow::Result<R> {
    exec(conn, "SAVEPOINT op", [])?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("a database operation panicked")));
    if result.is_err() {
        exec(conn, "ROLLBACK TO op", [])?;
    }
    exec(conn, "RELEASE op", [])?;
    result
}

fn serve(
    mut conn: Connection,
    queue: std::sync::mpsc::Receiver<Job>,
    restart: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let began = exec(&conn, "BEGIN IMMEDIATE", [])
            .map(drop)
            .map_err(anyhow::Error::from);
        let replies: Vec<Reply> = match &began {
            Ok(()) => batch.into_iter().map(|job| job(&mut conn)).collect(),
            Err(_) => Vec::new(),
        };
        let outcome = began.and_then(|()| {
            exec(&conn, "COMMIT", [])
                .map(drop)
                .map_err(anyhow::Error::from)
        });
        match outcome {
            Ok(()) => replies.into_iter().for_each(|reply| reply(None)),
            Err(e) => {
                tracing::error!(error = %e, "a database batch failed; its operations will be retried");
                let _ = conn.execute_batch("ROLLBACK");
                replies.into_iter().for_each(|reply| reply(Some(&e)));
            }
        }
        // After the answers: copy what the checkpointer could not, so the log starts again.
        if restart.swap(false, std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "checkpoint failed");
        }
    }
}
