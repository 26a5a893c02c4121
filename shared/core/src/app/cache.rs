//! Scenarios kept in memory, compiled once: the active list per (account, trigger type) and
//! each scenario by id. Only for a process that is the only writer of its scenarios (local
//! mode): every change made through [`Hookline`] invalidates, and a generation number keeps a
//! load that raced with a change from caching what it read before it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Hookline;
use crate::domain::occurrence::TimeRule;
use crate::domain::scenario::{Compiled, ScenarioRecord};

/// Bound on each map; past it the map starts again empty.
const MAX_ENTRIES: usize = 10_000;

/// A stored scenario with its compiled graph (`None`: it no longer compiles).
pub(crate) struct Loaded {
    pub record: ScenarioRecord,
    pub compiled: Option<Compiled>,
    /// A time-based trigger's rule.
    pub rule: Option<TimeRule>,
}

impl Loaded {
    fn new(record: ScenarioRecord) -> Arc<Loaded> {
        let rule = TimeRule::from_trigger(&record.def.trigger, "trigger")
            .ok()
            .flatten();
        let compiled = match record.def.compile(true) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(scenario_id = %record.id, error = %e, "stored scenario no longer compiles");
                None
            }
        };
        Arc::new(Loaded {
            record,
            compiled,
            rule,
        })
    }
}

type Active = Arc<Vec<Arc<Loaded>>>;

/// Every active scenario of one account, read once for a whole intake (one event, or a batch
/// of them: the HTTP batch, the intake queue's batch) by the first of its events that needs
/// them, whatever its trigger. The next intake reads them again: an activation or an archival
/// counts from the next event or batch.
pub(crate) struct ActiveOnce {
    account: i64,
    all: tokio::sync::OnceCell<Active>,
}

#[derive(Default)]
pub(crate) struct ScenarioCache {
    generation: AtomicU64,
    by_id: Mutex<HashMap<(i64, String), Arc<Loaded>>>,
    active: Mutex<HashMap<(i64, String), Active>>,
}

/// Inserts into a map bounded by [`MAX_ENTRIES`] (past it, the map starts again empty).
pub(crate) fn put<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    if let Ok(mut m) = map.lock() {
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(key, value);
    }
}

impl ScenarioCache {
    fn invalidate(&self, account: i64, id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.by_id.lock() {
            m.remove(&(account, id.to_string()));
        }
        if let Ok(mut m) = self.active.lock() {
            m.retain(|(a, _), _| *a != account);
        }
    }
}

impl Hookline {
    /// Keeps scenarios in memory. Only for a process that is the only writer of scenarios.
    pub fn with_scenario_cache(mut self) -> Self {
        self.cache = Some(Arc::default());
        self
    }

    /// Called after every scenario write.
    pub(crate) fn scenario_changed(&self, account: i64, id: &str) {
        if let Some(cache) = &self.cache {
            cache.invalidate(account, id);
        }
    }

    /// This engine, reading `account`'s active scenarios once for all it does (an intake: see
    /// [`ActiveOnce`]). Itself when it keeps scenarios in memory already, or reads them once
    /// for this account already.
    pub(crate) fn reading_active_once(&self, account: i64) -> Hookline {
        let scoped = self
            .active_once
            .as_ref()
            .is_some_and(|o| o.account == account);
        if self.cache.is_some() || scoped {
            return self.clone();
        }
        let mut engine = self.clone();
        engine.active_once = Some(Arc::new(ActiveOnce {
            account,
            all: tokio::sync::OnceCell::new(),
        }));
        engine
    }

    /// The active scenarios of an account with any of these trigger types.
    pub(crate) async fn active_scenarios(
        &self,
        account: i64,
        trigger_types: &[&str],
    ) -> anyhow::Result<Active> {
        let key = (account, trigger_types.join(","));
        let generation = match &self.cache {
            Some(cache) => {
                if let Some(hit) = cache.active.lock().ok().and_then(|m| m.get(&key).cloned()) {
                    return Ok(hit);
                }
                Some(cache.generation.load(Ordering::SeqCst))
            }
            None => None,
        };
        if let Some(once) = &self.active_once
            && once.account == account
        {
            let all = once
                .all
                .get_or_try_init(|| async {
                    let records = self.ports.scenarios.active(account).await?;
                    Ok::<Active, anyhow::Error>(Arc::new(
                        records.into_iter().map(Loaded::new).collect(),
                    ))
                })
                .await?;
            let kept = all
                .iter()
                .filter(|s| trigger_types.contains(&s.record.def.trigger.kind.as_str()))
                .cloned();
            return Ok(Arc::new(kept.collect()));
        }
        let records = self
            .ports
            .scenarios
            .active_for_triggers(account, trigger_types)
            .await?;
        let loaded: Active = Arc::new(records.into_iter().map(Loaded::new).collect());
        if let (Some(cache), Some(generation)) = (&self.cache, generation)
            && cache.generation.load(Ordering::SeqCst) == generation
        {
            put(&cache.active, key, loaded.clone());
        }
        Ok(loaded)
    }

    /// One scenario of an account, whatever its status.
    pub(crate) async fn loaded_scenario(
        &self,
        account: i64,
        id: &str,
    ) -> anyhow::Result<Option<Arc<Loaded>>> {
        let key = (account, id.to_string());
        let generation = match &self.cache {
            Some(cache) => {
                if let Some(hit) = cache.by_id.lock().ok().and_then(|m| m.get(&key).cloned()) {
                    return Ok(Some(hit));
                }
                Some(cache.generation.load(Ordering::SeqCst))
            }
            None => None,
        };
        let Some(record) = self.ports.scenarios.get(account, id).await? else {
            return Ok(None);
        };
        let loaded = Loaded::new(record);
        if let (Some(cache), Some(generation)) = (&self.cache, generation)
            && cache.generation.load(Ordering::SeqCst) == generation
        {
            put(&cache.by_id, key, loaded.clone());
        }
        Ok(Some(loaded))
    }
}
