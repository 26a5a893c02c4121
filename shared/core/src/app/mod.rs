//! The use cases, one module each. [`Hookline`] holds the ports and runs them.

mod advance;
mod attempt;
mod cache;
mod deliver;
mod destinations;
mod held;
mod inline;
mod intake;
mod occurrences;
mod outbox;
mod resend;
mod scenarios;
mod secrets;
mod stats;
mod test_webhook;
pub mod views;
mod walk;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;

use crate::domain::Invalid;
use crate::domain::ids::{hash_api_key, key_prefix};
use crate::domain::retry::RetryPolicy;
use crate::ports::{ApiKey, Pipeline, Ports, Queue, Task};

pub use destinations::DestinationView;
pub use inline::{Gated, Made};
pub use intake::{BatchItem, MAX_BATCH_EVENTS};
pub use occurrences::{
    BACKFILL_PAGE, FIRE_CHUNK, NEAR, SWEEP_BUDGET, SWEEP_MINUTES, SWEEP_PAGE, Swept,
};
pub use resend::{MAX_RESEND, RESEND_CHUNK, ResendFailed, ResendQueued};
pub use secrets::SecretView;
pub use test_webhook::TestRequest;

/// What a use case answers instead of a result.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The caller's input is wrong (400); nothing was stored.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// No key, or a key that is not known (401).
    #[error("a valid API key is required")]
    Unauthorized,
    /// Unknown, or another account's (404).
    #[error("{0}")]
    NotFound(String),
    /// The resource is not in a state that allows this (409).
    #[error("{0}")]
    Conflict(String),
    /// Something that may pass: a store or queue failure (503, retried by clients).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What a queue consumer does with a task once handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Finished: acknowledge.
    Done,
    /// Run the same task again at this time (a timer that fired early, a move not yet made).
    RetryAt(Timestamp),
}

/// Known keys kept in memory (hash → account, and when it was read), each trusted for
/// [`Hookline::with_key_cache_ttl`] (60 s by default: a revoked key is refused within that).
/// Unknown keys are always asked again.
const KEY_CACHE_MAX: usize = 10_000;
const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Scenarios held by (account, id).
type Held = HashMap<(i64, String), Arc<cache::Loaded>>;

/// The engine: every use case over one set of ports.
#[derive(Clone)]
pub struct Hookline {
    /// The ports this engine runs on.
    pub ports: Ports,
    /// The retry policy (window and delays).
    pub policy: RetryPolicy,
    known_keys: Arc<Mutex<HashMap<String, (i64, std::time::Instant)>>>,
    key_ttl: std::time::Duration,
    cache: Option<Arc<cache::ScenarioCache>>,
    /// Set for one intake: its account's active scenarios, read once.
    active_once: Option<Arc<cache::ActiveOnce>>,
    /// The scenarios webhook-deliver last read to sign with, by (account, id): a first attempt
    /// whose message names a version no newer than the copy held signs without a read.
    signing: Arc<Mutex<Held>>,
    /// The configured pace of each (account, URL) and when it was read.
    url_limits: Arc<Mutex<UrlLimits>>,
}

type UrlLimits = HashMap<(i64, String), (Option<f64>, std::time::Instant)>;

impl Hookline {
    /// An engine over these ports, with this retry policy.
    pub fn new(ports: Ports, policy: RetryPolicy) -> Self {
        Hookline {
            ports,
            policy,
            known_keys: Arc::default(),
            key_ttl: KEY_CACHE_TTL,
            cache: None,
            active_once: None,
            signing: Arc::default(),
            url_limits: Arc::default(),
        }
    }

    /// The queue of the queued path.
    fn queue(&self) -> anyhow::Result<&dyn Queue> {
        match &self.ports.pipeline {
            Pipeline::Queued(queue) => Ok(queue.as_ref()),
            Pipeline::Inline { .. } => anyhow::bail!("this engine runs the inline path"),
        }
    }

    /// Runs one queued task. `Err` is a failure that may pass: the task is tried again.
    pub async fn handle(&self, task: &Task) -> anyhow::Result<Outcome> {
        match task {
            Task::AdvanceV1 {
                enrollment_id,
                step_id,
                seq,
                not_before,
                at,
            } => {
                if let Some(at) = *not_before
                    && at > self.ports.clock.now()
                {
                    // a timer that fired early (Scheduler is set a minute ahead): wait the rest
                    return Ok(Outcome::RetryAt(at));
                }
                let walk_at = at.or(*not_before);
                self.advance(enrollment_id, step_id.as_deref(), *seq, walk_at)
                    .await
            }
            Task::DeliverV1 {
                delivery_id,
                attempt,
                deadline,
                slot,
                moved_at,
            } => {
                let held = held::Held {
                    slot: *slot,
                    moved_at: *moved_at,
                };
                self.deliver(delivery_id, *attempt, *deadline, held).await
            }
            Task::DeliverFirstV1 {
                delivery,
                pass,
                scenario_at,
            } => self.deliver_first(delivery, pass, *scenario_at).await,
            Task::ResendV1 { delivery_ids } => self.resend_task(delivery_ids).await,
            Task::FireV1 { items } => self.fire_all(items).await,
            Task::BackfillV1 {
                account,
                scenario_id,
                cursor,
            } => {
                self.backfill_task(crate::ports::Backfill {
                    account: *account,
                    scenario_id: scenario_id.clone(),
                    cursor: cursor.clone(),
                })
                .await
            }
        }
    }

    /// The account an API key belongs to.
    pub async fn authenticate(&self, key: &str) -> Result<i64, AppError> {
        if key.is_empty() || key.len() > 200 {
            return Err(AppError::Unauthorized);
        }
        let hash = hash_api_key(key);
        let cached = self
            .known_keys
            .lock()
            .ok()
            .and_then(|m| m.get(&hash).copied());
        if let Some((account, read)) = cached
            && read.elapsed() < self.key_ttl
        {
            return Ok(account);
        }
        let account = self
            .ports
            .keys
            .account_for(&hash)
            .await?
            .ok_or(AppError::Unauthorized)?;
        if let Ok(mut known) = self.known_keys.lock() {
            if known.len() >= KEY_CACHE_MAX {
                known.clear();
            }
            known.insert(hash, (account, std::time::Instant::now()));
        }
        Ok(account)
    }

    /// How long a known key is trusted without asking the store again (the longest a revoked
    /// key may still be accepted).
    pub fn with_key_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.key_ttl = ttl;
        self
    }

    /// Every key, newest first (prefixes only; keys are stored hashed).
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>, AppError> {
        let mut keys = self.ports.keys.list().await?;
        keys.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(a.prefix.cmp(&b.prefix))
        });
        Ok(keys)
    }

    /// Revokes the key with this prefix, or this very key. A prefix shared by two live keys
    /// is refused (409): give the whole key.
    pub async fn revoke_key(&self, prefix_or_key: &str) -> Result<ApiKey, AppError> {
        let given = prefix_or_key.trim();
        let prefix = key_prefix(given);
        let whole = (given.len() > prefix.len()).then(|| hash_api_key(given));
        let live: Vec<ApiKey> = self
            .ports
            .keys
            .list()
            .await?
            .into_iter()
            .filter(|k| k.revoked_at.is_none())
            // a whole key is found by its hash (keys made before prefixes existed have none)
            .filter(|k| match &whole {
                Some(hash) => *hash == k.hash,
                None => k.prefix == prefix,
            })
            .collect();
        let key = match live.as_slice() {
            [] => return Err(AppError::NotFound(format!("no live key `{prefix}`"))),
            [one] => one.clone(),
            _ => {
                return Err(AppError::Conflict(format!(
                    "{} live keys start with `{prefix}`: give the whole key",
                    live.len()
                )));
            }
        };
        let now = self.ports.clock.now();
        if !self.ports.keys.revoke(&key.hash, now).await? {
            return Err(AppError::NotFound(format!("no live key `{prefix}`")));
        }
        if let Ok(mut known) = self.known_keys.lock() {
            known.remove(&key.hash);
        }
        Ok(ApiKey {
            revoked_at: Some(now),
            ..key
        })
    }

    /// Registers a key (stored hashed); `false` when it was already there.
    pub async fn register_key(&self, key: &str, account: i64) -> Result<bool, AppError> {
        if key.len() < 16 {
            return Err(
                Invalid::new("invalid_key", "key", "an API key is at least 16 characters").into(),
            );
        }
        let record = ApiKey {
            hash: hash_api_key(key),
            prefix: key_prefix(key),
            account,
            created_at: self.ports.clock.now(),
            revoked_at: None,
        };
        Ok(self.ports.keys.insert(&record).await?)
    }
}
