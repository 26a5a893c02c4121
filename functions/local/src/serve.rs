//! `hookline serve`: the API and the workers over one SQLite file.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use hookline_core::Hookline;
use hookline_core::domain::retry::RetryPolicy;
use hookline_core::ports::{Clock, Pipeline, Ports, ShiftedClock, SystemClock, UlidIds};
use hookline_local::{Db, Inbox, SqliteStore, Workers, dispatch_channel};
use hookline_sender::ReqwestSender;
use rand::distr::{Alphanumeric, SampleString};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Config {
    pub listen: String,
    pub db: PathBuf,
    pub api_keys: Vec<(i64, String)>,
    pub allow_private_targets: bool,
    pub policy: RetryPolicy,
    pub workers: usize,
    /// Attempts in flight toward one destination at most (SPEC §6a).
    pub destination_concurrency: u32,
    /// The clock starts at this instant (tests, demos); `None`: the real time.
    pub clock_start: Option<jiff::Timestamp>,
}

/// `ACCOUNT:KEY` pairs of `--api-key`.
pub fn parse_api_keys(raw: &[String]) -> anyhow::Result<Vec<(i64, String)>> {
    raw.iter()
        .map(|pair| {
            let (account, key) = pair
                .split_once(':')
                .with_context(|| "invalid setting --api-key: expected ACCOUNT:KEY")?;
            let account = account.trim().parse::<i64>().with_context(|| {
                format!("invalid setting --api-key: account `{account}` is not an integer")
            })?;
            if key.len() < 16 {
                bail!("invalid setting --api-key: a key is at least 16 characters");
            }
            Ok((account, key.to_string()))
        })
        .collect()
}

/// The engine over a database file (the inline path, scenarios cached: this process is the
/// database's only writer), with the real clock, ids and sender; and its workers' inbox.
pub fn engine(db: &Db, allow_private: bool, policy: RetryPolicy) -> (Hookline, SqliteStore, Inbox) {
    engine_with_clock(db, allow_private, policy, Arc::new(SystemClock))
}

/// [`engine`] with another clock.
pub fn engine_with_clock(
    db: &Db,
    allow_private: bool,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
) -> (Hookline, SqliteStore, Inbox) {
    let store = SqliteStore::new(db.clone());
    let (dispatch, inbox) = dispatch_channel();
    let sender = ReqwestSender::new(allow_private);
    let ports = Ports {
        scenarios: Arc::new(store.clone()),
        contacts: Arc::new(store.clone()),
        enrollments: Arc::new(store.clone()),
        deliveries: Arc::new(store.clone()),
        keys: Arc::new(store.clone()),
        occurrences: Arc::new(store.clone()),
        pipeline: Pipeline::Inline {
            flow: Arc::new(store.clone()),
            dispatch: Arc::new(dispatch),
        },
        sender: Arc::new(sender),
        clock,
        ids: Arc::new(UlidIds),
        destinations: Arc::new(inbox.destinations()),
    };
    let engine = Hookline::new(ports, policy)
        .with_scenario_cache()
        .with_key_cache_ttl(KEY_TTL);
    (engine, store, inbox)
}

/// How long `serve` trusts a key it has read: a key revoked by `hookline keys revoke` (another
/// process) is refused within this (SPEC §8: 1 s).
pub const KEY_TTL: std::time::Duration = std::time::Duration::from_millis(500);

/// One process per database: the scenario cache and the workers' timers assume it.
fn lock(db: &Path) -> anyhow::Result<File> {
    let mut path = db.as_os_str().to_owned();
    path.push(".lock");
    let file =
        File::create(&path).with_context(|| format!("creating {}", Path::new(&path).display()))?;
    if file.try_lock().is_err() {
        bail!(
            "another hookline is serving {}; one process per database",
            db.display()
        );
    }
    Ok(file)
}

pub struct Server {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    workers: JoinHandle<anyhow::Result<()>>,
    _lock: File,
}

pub async fn start(config: Config) -> anyhow::Result<Server> {
    let lock = lock(&config.db)?;
    let db = Db::open(&config.db)?;
    let clock: Arc<dyn Clock> = match config.clock_start {
        Some(start) => Arc::new(ShiftedClock::starting_at(start)),
        None => Arc::new(SystemClock),
    };
    let metrics = crate::metrics::handle()?;
    let (engine, store, inbox) = engine_with_clock(
        &db,
        config.allow_private_targets,
        config.policy,
        clock.clone(),
    );
    for (account, key) in &config.api_keys {
        engine
            .register_key(key, *account)
            .await
            .map_err(|e| anyhow::anyhow!("registering --api-key: {e}"))?;
    }
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| {
            format!(
                "invalid setting --listen: cannot listen on {}",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let app = hookline_http_api::router(engine.clone()).merge(crate::metrics::routes(
        metrics,
        store.clone(),
        clock,
    ));
    let workers = Workers::new(engine.clone(), Arc::new(store), inbox, config.workers)
        .with_destination_concurrency(config.destination_concurrency);
    let workers = tokio::spawn(workers.run(stopped.clone()));
    let mut http_stopped = stopped;
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stopped.wait_for(|s| *s).await;
            })
            .await
    });
    if config.allow_private_targets {
        tracing::warn!(
            "private targets allowed: webhooks may reach loopback and private addresses"
        );
    }
    Ok(Server {
        addr,
        stop,
        http,
        workers,
        _lock: lock,
    })
}

impl Server {
    /// Stops taking requests, lets jobs in flight finish, and returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.http.await??;
        self.workers.await??;
        Ok(())
    }
}

/// The engine for `keys list` / `keys revoke` (beside a running `serve`: SQLite's locks share
/// the file; the serving process notices a revocation within [`KEY_TTL`]).
pub fn keys_engine(db: &Path) -> anyhow::Result<Hookline> {
    let db = Db::open(db)?;
    Ok(engine(&db, false, RetryPolicy::default()).0)
}

pub async fn create_key(db: &Path, account: i64) -> anyhow::Result<String> {
    let db = Db::open(db)?;
    let (engine, _, _) = engine(&db, false, RetryPolicy::default());
    let key = format!("hk_{}", Alphanumeric.sample_string(&mut rand::rng(), 40));
    engine
        .register_key(&key, account)
        .await
        .map_err(|e| anyhow::anyhow!("storing the key: {e}"))?;
    Ok(key)
}

/// SIGTERM or Ctrl-C.
pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
