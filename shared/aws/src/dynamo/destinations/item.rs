//! The destination's item: its reads (through the cache), compare-and-set writes, and the
//! claims of a paced destination's starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::ReturnValue;
use hookline_core::domain::destination::{Answer, Destination, destination_id};
use hookline_core::ports::{Clock, StoreResult};
use jiff::Timestamp;
use tokio::sync::Notify;

use super::*;

impl DynamoDestinations {
    /// `concurrency` per destination over `instances` concurrent instances at most.
    pub fn new(
        store: DynamoStore,
        clock: Arc<dyn Clock>,
        concurrency: u32,
        instances: u32,
    ) -> Self {
        DynamoDestinations {
            store,
            clock,
            share: (concurrency / instances.max(1)).max(1),
            kept: Arc::default(),
            freed: Arc::new(Notify::new()),
        }
    }

    /// Attempts in flight per destination from one instance.
    pub fn share(&self) -> u32 {
        self.share
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Kept>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn item_key(account: i64, url: &str) -> Item {
        key(format!("DST#{account}"), &destination_id(account, url))
    }

    /// The item's parts: state, version, failures in a row.
    pub(super) fn parse(item: &Item) -> anyhow::Result<(Destination, i64, u32)> {
        let state = match opt_s(item, "state") {
            Some(json) => serde_json::from_str(&json).context("a destination's state")?,
            None => Destination::default(),
        };
        let ver = opt_n(item, "ver").unwrap_or(0);
        let fails = opt_n(item, "fails").unwrap_or(0).max(0) as u32;
        Ok((state, ver, fails))
    }

    /// Takes a read (or a write's answer) into the cache.
    pub(super) fn take(&self, k: &Key, parts: Option<(Destination, i64, u32)>) {
        let mut kept = self.lock();
        let entry = kept.entry(k.clone()).or_default();
        let (state, ver, fails) = parts.unwrap_or_default();
        adopt(&mut entry.state, state);
        entry.ver = ver;
        entry.fails = fails;
        entry.read_at = Some(Instant::now());
    }

    /// The destination's state, read again when the copy held is older than `max_age`.
    pub(super) async fn view(
        &self,
        k: &Key,
        max_age: Duration,
        consistent: bool,
    ) -> StoreResult<Kept> {
        let fresh = self
            .lock()
            .get(k)
            .and_then(|e| e.read_at)
            .is_some_and(|at| at.elapsed() < max_age);
        if !fresh {
            let out = self
                .store
                .client
                .get_item()
                .table_name(&self.store.table)
                .set_key(Some(Self::item_key(k.0, &k.1)))
                .consistent_read(consistent)
                .send()
                .await
                .context("DynamoDB GetItem destination")?;
            let parts = out.item.as_ref().map(Self::parse).transpose()?;
            self.take(k, parts);
            let tat = out.item.as_ref().and_then(|i| opt_n(i, "tat"));
            if let Some(e) = self.lock().get_mut(k) {
                e.tat = tat;
            }
        }
        let kept = self.lock();
        let e = kept.get(k).map_or_else(Kept::default, |e| Kept {
            state: e.state.clone(),
            ver: e.ver,
            fails: e.fails,
            read_at: e.read_at,
            in_flight: e.in_flight,
            probing: e.probing,
            accepted: e.accepted.clone(),
            tat: e.tat,
            flushed_at: e.flushed_at,
        });
        Ok(e)
    }

    /// Writes `state` if the item is still at `ver` (`reset_fails`: failures in a row back to
    /// 0); `false` when another instance wrote first.
    pub(super) async fn write(
        &self,
        k: &Key,
        state: &Destination,
        ver: i64,
        reset_fails: bool,
    ) -> StoreResult<bool> {
        let mut shared = state.clone();
        shared.in_flight = 0;
        let mut set = "SET #url = :url, #state = :state, ver = :new, expires_at = :exp".to_string();
        let mut update = self
            .store
            .client
            .update_item()
            .table_name(&self.store.table)
            .set_key(Some(Self::item_key(k.0, &k.1)))
            .expression_attribute_names("#url", "url")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":url", s(&k.1))
            .expression_attribute_values(":state", s(serde_json::to_string(&shared)?))
            .expression_attribute_values(":new", n(ver + 1))
            .expression_attribute_values(":exp", ttl(ITEM_DAYS))
            .expression_attribute_values(":old", n(ver))
            .condition_expression("attribute_not_exists(ver) OR ver = :old");
        if reset_fails {
            set.push_str(", fails = :zero");
            update = update.expression_attribute_values(":zero", n(0));
        }
        match update.update_expression(set).send().await {
            Ok(_) => {
                let fails = if reset_fails {
                    0
                } else {
                    self.lock().get(k).map_or(0, |e| e.fails)
                };
                self.take(k, Some((shared, ver + 1, fails)));
                if let Some(e) = self.lock().get_mut(k) {
                    e.accepted.clear();
                }
                Ok(true)
            }
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(anyhow::Error::from(e).context("DynamoDB UpdateItem destination")),
        }
    }

    /// Applies `change` to the destination's state and writes it (compare-and-set, read again
    /// on a conflict). `change` answers whether there is anything to write.
    pub(super) async fn transition(
        &self,
        k: &Key,
        reset_fails: bool,
        mut change: impl FnMut(&mut Destination, &Kept) -> bool,
    ) -> StoreResult<()> {
        let mut max_age = CACHE_TTL;
        for _ in 0..TRIES {
            let kept = self.view(k, max_age, true).await?;
            let mut state = kept.state.clone();
            if !change(&mut state, &kept) {
                return Ok(());
            }
            if self.write(k, &state, kept.ver, reset_fails).await? {
                return Ok(());
            }
            max_age = Duration::ZERO;
        }
        anyhow::bail!("destination {}: too many conflicting writes", k.1)
    }

    /// Takes a slot of this instance for the destination.
    pub(super) fn take_slot(&self, k: &Key, probe: bool) {
        let mut kept = self.lock();
        let e = kept.entry(k.clone()).or_default();
        e.in_flight += 1;
        e.probing |= probe;
    }

    /// Claims the next start at `pace` (GCRA: the item's `tat` is the earliest start not yet
    /// claimed). An idle destination (`tat` in the past, or none) is claimed with one
    /// conditional write that moves `tat` to an interval from now (start now); a busy one
    /// with one atomic `ADD` of the interval, so that instances claiming at once never
    /// conflict (each `ADD` answers its own start). A start the store's answer came too late
    /// for (past by more than half an interval) is not taken: the next one is claimed. `None`
    /// (nothing claimed) when the next start would be past `deadline`.
    pub(super) async fn claim(
        &self,
        k: &Key,
        pace: f64,
        now: Timestamp,
        deadline: Timestamp,
    ) -> StoreResult<Option<Timestamp>> {
        let interval = ((1000.0 / pace).round() as i64).max(1);
        let tat = self.lock().get(k).and_then(|e| e.tat).unwrap_or(0);
        if tat.max(now.as_millisecond()) > deadline.as_millisecond() {
            return Ok(None);
        }
        let mut idle = tat <= now.as_millisecond();
        for tries in 1..=TRIES {
            let last = tries == TRIES;
            let now_ms = self.clock.now().as_millisecond();
            if idle {
                let started = self
                    .store
                    .client
                    .update_item()
                    .table_name(&self.store.table)
                    .set_key(Some(Self::item_key(k.0, &k.1)))
                    .update_expression("SET #url = :url, expires_at = :exp, tat = :next")
                    .condition_expression("attribute_not_exists(tat) OR tat <= :now")
                    .expression_attribute_names("#url", "url")
                    .expression_attribute_values(":url", s(&k.1))
                    .expression_attribute_values(":exp", ttl(ITEM_DAYS))
                    .expression_attribute_values(":next", n(now_ms + interval))
                    .expression_attribute_values(":now", n(now_ms))
                    .send()
                    .await;
                match started {
                    Ok(_) => {
                        if let Some(e) = self.lock().get_mut(k) {
                            e.tat = Some(now_ms + interval);
                        }
                        // a write answered later than half an interval: that start has gone
                        // by (sent now, it would crowd the next ones): take the next instead
                        let late = self.clock.now().as_millisecond() - now_ms;
                        if late <= interval / 2 || last {
                            return Ok(Some(Timestamp::from_millisecond(now_ms)?));
                        }
                        idle = false;
                        continue;
                    }
                    Err(e) if is_conditional(&e) => {} // busy: claimed by another meanwhile
                    Err(e) => {
                        return Err(
                            anyhow::Error::from(e).context("DynamoDB UpdateItem destination")
                        );
                    }
                }
            }
            let out = self
                .store
                .client
                .update_item()
                .table_name(&self.store.table)
                .set_key(Some(Self::item_key(k.0, &k.1)))
                .update_expression("SET #url = :url, expires_at = :exp ADD tat :iv")
                .expression_attribute_names("#url", "url")
                .expression_attribute_values(":url", s(&k.1))
                .expression_attribute_values(":exp", ttl(ITEM_DAYS))
                .expression_attribute_values(":iv", n(interval))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await
                .context("DynamoDB UpdateItem destination claim")?;
            let tat = out
                .attributes
                .as_ref()
                .and_then(|a| opt_n(a, "tat"))
                .context("a claim without its tat")?;
            if let Some(e) = self.lock().get_mut(k) {
                e.tat = Some(tat);
            }
            let now_ms = self.clock.now().as_millisecond();
            if tat - interval >= now_ms || last {
                return Ok(Some(Timestamp::from_millisecond(
                    (tat - interval).max(now_ms),
                )?));
            }
            idle = true; // went idle since: that start is in the past, claim from now
        }
        anyhow::bail!("destination {}: too many conflicting claims", k.1)
    }

    /// Applies the attempts accepted here since the last write to `state` (the learned
    /// pace's additive increase, carried by this instance's next write).
    pub(super) fn with_accepted(state: &mut Destination, kept: &Kept, now: Timestamp) {
        if state.learned.is_none() || state.failing_since.is_some() {
            return;
        }
        for started in &kept.accepted {
            state.in_flight += 1;
            state.finished(now, *started, Answer::Accepted, None);
        }
    }
}
