//! The gate: whether an attempt may start now (a failing destination's probe, a pause, this
//! instance's share of the concurrency, the pace), and what its answer changes.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use hookline_core::domain::destination::{Answer, FAILURES_TO_FAIL, Health, PROBE_FIRST};
use hookline_core::domain::time::add;
use hookline_core::ports::{DestinationGate, Gate, StoreResult};
use jiff::Timestamp;

use super::*;

#[async_trait]
impl DestinationGate for DynamoDestinations {
    async fn admit(
        &self,
        account: i64,
        url: &str,
        rate_limit: Option<f64>,
        reserved: Option<Timestamp>,
        deadline: Timestamp,
    ) -> StoreResult<Gate> {
        let k: Key = (account, url.to_string());
        let waiting_since = Instant::now();
        let mut max_age = CACHE_TTL;
        let mut tries = 0;
        loop {
            tries += 1;
            if tries > TRIES * 4 {
                anyhow::bail!("destination {url}: too many conflicting writes");
            }
            let kept = self.view(&k, max_age, max_age.is_zero()).await?;
            let mut state = kept.state.clone();
            state.configure(rate_limit);
            let now = self.clock.now();
            let age = kept.read_at.map_or(Duration::MAX, |at| at.elapsed());
            // a hold decided on an old read reads again first
            let hold = |until: Timestamp, health: Health| Gate::Wait {
                until,
                reserved: false,
                health,
            };
            if state.failing_since.is_some() {
                let probe_alive = state.probing
                    && state
                        .last_attempt_at
                        .is_some_and(|t| add(t, PROBE_STALE) > now);
                let next = state.next_probe.filter(|at| *at > now);
                if probe_alive || next.is_some() {
                    if age > HOLD_REFRESH {
                        max_age = Duration::ZERO;
                        continue;
                    }
                    let until = next.unwrap_or_else(|| add(now, PROBE_FIRST));
                    return Ok(hold(until, Health::Failing));
                }
                // this attempt is the probe
                state.probing = false;
                state.in_flight = 0;
                state.admit(now, u32::MAX);
                if self.write(&k, &state, kept.ver, false).await? {
                    self.take_slot(&k, true);
                    return Ok(Gate::Go {
                        probe: true,
                        at: now,
                    });
                }
                max_age = Duration::ZERO;
                continue;
            }
            if let Some(until) = state.paused_until
                && until > now
            {
                if age > HOLD_REFRESH {
                    max_age = Duration::ZERO;
                    continue;
                }
                return Ok(hold(until, Health::Throttled));
            }
            // (a paced destination's starts are spaced by its pace over every instance: its
            // attempts in flight are what that pace lets start, not this instance's share)
            if kept.in_flight >= self.share && now < deadline && state.pace().is_none() {
                let left = SLOT_WAIT.saturating_sub(waiting_since.elapsed());
                if left.is_zero() {
                    return Ok(hold(add(now, Duration::from_secs(1)), state.health(now)));
                }
                let freed = self.freed.notified();
                let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), freed).await;
                continue;
            }
            if let Some(at) = reserved
                && let Some(pace) = state.pace()
                && since(now, at) <= LATE.min(Duration::from_secs_f64(0.5 / pace))
            {
                // its start was claimed before it was queued again
                if since(at, now) > WAIT_IN_PROCESS {
                    return Ok(Gate::Wait {
                        until: at,
                        reserved: true,
                        health: Health::Throttled,
                    });
                }
                self.take_slot(&k, false);
                return Ok(Gate::Go {
                    probe: false,
                    at: at.max(now),
                });
            }
            if let Some(pace) = state.pace() {
                let Some(start) = self.claim(&k, pace, now, deadline).await? else {
                    return Ok(hold(deadline.max(now), Health::Throttled));
                };
                let wait = since(start, now);
                if wait > WAIT_IN_PROCESS {
                    return Ok(Gate::Wait {
                        until: start,
                        reserved: true,
                        health: Health::Throttled,
                    });
                }
                self.take_slot(&k, false);
                return Ok(Gate::Go {
                    probe: false,
                    at: start.max(now),
                });
            }
            self.take_slot(&k, false);
            return Ok(Gate::Go {
                probe: false,
                at: now,
            });
        }
    }

    async fn finished(
        &self,
        account: i64,
        url: &str,
        started: Timestamp,
        answer: Answer,
        error: Option<&str>,
    ) -> StoreResult<()> {
        let k: Key = (account, url.to_string());
        let (probe, kept_state, fails) = {
            let mut kept = self.lock();
            let e = kept.entry(k.clone()).or_default();
            e.in_flight = e.in_flight.saturating_sub(1);
            let probe = std::mem::take(&mut e.probing);
            let before = e.state.clone();
            if answer == Answer::Accepted && before.failing_since.is_none() {
                if before.learned.is_some() {
                    e.accepted.push(started); // carried by this instance's next write
                }
                // this instance's own record of what it saw accepted (a refusal learns a
                // pace from it); the shared fields stay as read
                e.state.in_flight += 1;
                e.state.finished(self.clock.now(), started, answer, None);
                e.state.learned = before.learned;
                e.state.next_pause = before.next_pause;
                e.state.refused_at = before.refused_at;
                e.state.next_start = before.next_start;
                e.state.paused_until = before.paused_until;
            }
            (probe, before, e.fails)
        };
        self.freed.notify_waiters();
        let now = self.clock.now();
        match answer {
            // no request was made (a payload past its bound): nothing learned
            Answer::NotSent => Ok(()),
            Answer::Accepted | Answer::Declined => {
                if probe || kept_state.failing_since.is_some() {
                    // healing: the first answered probe (or an attempt begun before) lets all go
                    return self
                        .transition(&k, true, |state, _| {
                            if state.failing_since.is_none() && !state.probing {
                                return false;
                            }
                            state.in_flight = 1;
                            state.finished(now, started, answer, error);
                            true
                        })
                        .await;
                }
                let flush = {
                    let kept = self.lock();
                    kept.get(&k).is_some_and(|e| {
                        !e.accepted.is_empty()
                            && e.flushed_at.is_none_or(|at| at.elapsed() >= FLUSH_EVERY)
                    })
                };
                if flush {
                    // the learned pace rises with what was accepted here (one write a second
                    // at most)
                    if let Some(e) = self.lock().get_mut(&k) {
                        e.flushed_at = Some(Instant::now());
                    }
                    self.transition(&k, false, |state, kept| {
                        if state.learned.is_none() || kept.accepted.is_empty() {
                            return false;
                        }
                        Self::with_accepted(state, kept, now);
                        true
                    })
                    .await?;
                }
                if fails > 0 {
                    self.store
                        .client
                        .update_item()
                        .table_name(&self.store.table)
                        .set_key(Some(Self::item_key(account, url)))
                        .update_expression("SET fails = :zero")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":zero", n(0))
                        .send()
                        .await
                        .map_or_else(
                            |e| {
                                if is_conditional(&e) {
                                    Ok(())
                                } else {
                                    Err(anyhow::Error::from(e)
                                        .context("DynamoDB UpdateItem destination"))
                                }
                            },
                            |_| Ok(()),
                        )?;
                    if let Some(e) = self.lock().get_mut(&k) {
                        e.fails = 0;
                    }
                }
                Ok(())
            }
            Answer::Refused { retry_after } => {
                // paused here at once, whatever the write below meets
                if let Some(e) = self.lock().get_mut(&k) {
                    let until = add(now, retry_after.unwrap_or(e.state.next_pause));
                    e.state.paused_until =
                        Some(e.state.paused_until.map_or(until, |p| p.max(until)));
                }
                let mut resume = None;
                self.transition(&k, true, |state, kept| {
                    Self::with_accepted(state, kept, now);
                    state.in_flight = 1;
                    // an attempt started before this instance could have read a refusal
                    // written by another (its cache) belongs to the same burst: it extends
                    // the pause, and lowers the pace only once
                    let started = match state.refused_at {
                        Some(r) if add(r, CACHE_TTL) >= started => r.min(started),
                        _ => started,
                    };
                    state.finished(now, started, answer, error);
                    resume = state.paused_until;
                    true
                })
                .await?;
                // the pace starts again after the pause (starts claimed before it are void)
                if let Some(at) = resume {
                    self.store
                        .client
                        .update_item()
                        .table_name(&self.store.table)
                        .set_key(Some(Self::item_key(account, url)))
                        .update_expression("SET tat = :at")
                        .expression_attribute_values(":at", n(at.as_millisecond()))
                        .send()
                        .await
                        .context("DynamoDB UpdateItem destination")?;
                }
                Ok(())
            }
            Answer::Failed => {
                if probe {
                    // a failed probe: the next one may start at its time
                    return self
                        .transition(&k, false, |state, _| {
                            state.in_flight = 1;
                            state.finished(now, started, answer, error);
                            true
                        })
                        .await;
                }
                if kept_state.failing_since.is_some() {
                    return Ok(()); // begun before the circuit opened
                }
                let out = self
                    .store
                    .client
                    .update_item()
                    .table_name(&self.store.table)
                    .set_key(Some(Self::item_key(account, url)))
                    .update_expression("SET #url = :url, expires_at = :exp ADD fails :one")
                    .expression_attribute_names("#url", "url")
                    .expression_attribute_values(":url", s(url))
                    .expression_attribute_values(":exp", ttl(ITEM_DAYS))
                    .expression_attribute_values(":one", n(1))
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await
                    .context("DynamoDB UpdateItem destination")?;
                let parts = out.attributes.as_ref().map(Self::parse).transpose()?;
                let fails = parts.as_ref().map_or(0, |p| p.2);
                self.take(&k, parts);
                if fails < FAILURES_TO_FAIL {
                    return Ok(());
                }
                // the 5th in a row, over every instance: failing
                self.transition(&k, false, |state, _| {
                    if state.failing_since.is_some() {
                        return false;
                    }
                    state.failures = FAILURES_TO_FAIL - 1;
                    state.in_flight = 1;
                    state.finished(now, started, answer, error);
                    true
                })
                .await
            }
        }
    }
}
