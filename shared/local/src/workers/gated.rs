//! The way of a delivery through its destination (SPEC §6a): read, held by its destination,
//! admitted fairly into a free slot, attempted, and what the answer teaches the destination;
//! held deliveries swept for deadlines and for contacts that move on.

use hookline_core::app::Gated;
use hookline_core::domain::delivery::{Delivery, DeliveryStatus};
use hookline_core::domain::destination::{Answer, Health, destination_id};
use hookline_core::ports::{DueWork, WorkKey};
use jiff::Timestamp;

use super::{Done, Work, Workers, finished, lock_timers};
use crate::destinations::{Admitted, Held};

impl Workers {
    /// A delivery's way to its destination: read (unless handed over), then given to the loop
    /// with its destination's configured pace ([`Work::Ready`]). Holds no slot.
    pub(super) fn resolve(&self, key: WorkKey, delivery: Option<Box<Delivery>>, early: bool) {
        let (engine, timers, back) = (self.engine.clone(), self.timers.clone(), self.back.clone());
        tokio::spawn(async move {
            lock_timers(&timers).slotted();
            let read = match (delivery, &key) {
                (Some(d), _) => Ok(Some(d)),
                (None, WorkKey::Delivery(id)) => engine
                    .ports
                    .deliveries
                    .get(id)
                    .await
                    .map(|d| d.map(Box::new)),
                (None, _) => Ok(None),
            };
            let delivery = match read {
                Ok(Some(d)) if d.status == DeliveryStatus::Pending => d,
                Ok(_) => {
                    finished(&timers, key, Ok(()), engine.ports.clock.now());
                    return;
                }
                Err(e) => {
                    finished(&timers, key, Err(e), engine.ports.clock.now());
                    return;
                }
            };
            let now = engine.ports.clock.now();
            if let Some(next) = delivery.next_attempt_at
                && next > now
                && !early
            {
                // not due (a timer set again with a time a scan saw before the last attempt)
                finished(&timers, key, Ok(()), now);
                back.send(Work::Due(DueWork::Delivery {
                    id: delivery.id,
                    at: next,
                }));
                return;
            }
            let limit = match engine.url_rate_limit(delivery.account, &delivery.url).await {
                Ok(limit) => limit,
                Err(e) => {
                    finished(&timers, key, Err(e), engine.ports.clock.now());
                    return;
                }
            };
            let since = engine.ports.clock.now();
            back.send(Work::Ready(
                Box::new(Held {
                    key,
                    delivery,
                    moved: false,
                    early,
                    since,
                }),
                limit,
            ));
        });
    }

    /// Starts what the destinations let start, in the free slots.
    pub(super) fn pump(&mut self) {
        let now = self.engine.ports.clock.now();
        let slots = self.slots.clone();
        let admitted = self
            .dests
            .lock()
            .pump(now, self.dest_concurrency, &mut self.turn, || {
                slots.clone().try_acquire_owned().ok()
            });
        for (a, slot) in admitted {
            self.attempt(a, slot);
        }
    }

    /// One attempt let start by its destination, in `slot`.
    pub(super) fn attempt(&self, a: Admitted, slot: tokio::sync::OwnedSemaphorePermit) {
        let (engine, stopping, back) = (
            self.engine.clone(),
            self.stopping.clone(),
            self.back.clone(),
        );
        let Admitted { dest, held, probe } = a;
        tokio::spawn(async move {
            let started = engine.ports.clock.now();
            let result = if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(None) // stopping: no new POST; the row stays due
            } else {
                let gated = Gated { early: held.early };
                engine.attempt_now(*held.delivery, gated).await
            };
            if probe {
                tracing::info!(destination = %destination_id(dest.0, &dest.1), "probe of a failing destination made");
            }
            drop(slot);
            back.send(Work::Done(Box::new(Done {
                dest,
                key: held.key,
                started,
                result,
            })));
        });
    }

    /// An attempt finished: its destination learns the answer, what a healed destination held
    /// is released at once, and the slot is used again.
    pub(super) fn done(&mut self, done: Done) {
        let now = self.engine.ports.clock.now();
        let Done {
            dest,
            key,
            started,
            result,
        } = done;
        let mut release = Vec::new();
        {
            let mut dests = self.dests.lock();
            let entry = dests.entries.entry(dest).or_default();
            match &result {
                Ok(Some(made)) => {
                    let healed = entry.state.finished(
                        now,
                        made.started.max(started).min(now),
                        made.answer,
                        made.error.as_deref(),
                    );
                    let waits =
                        made.status == DeliveryStatus::Pending && made.next_attempt_at.is_some();
                    let refused = matches!(made.answer, Answer::Refused { .. });
                    if let WorkKey::Delivery(id) = &key {
                        // a refused delivery goes back to its destination at once: held while
                        // it is paused, then sent at its pace (SPEC §6a) — not after its own
                        // retry delay
                        entry.note_backoff(id, waits && !refused);
                        if waits && refused {
                            release.push(id.clone());
                        }
                    }
                    // healed, or accepting again after refusals (a learned pace): what waits
                    // for its own retry comes back now, at the destination's pace
                    let accepting_again =
                        made.answer == Answer::Accepted && entry.state.learned.is_some();
                    if healed || accepting_again {
                        release.extend(entry.backoff.drain());
                    }
                }
                _ => entry.state.release(),
            }
        }
        finished(&self.timers, key, result.map(drop), now);
        for id in release {
            // their own retries wait no longer (SPEC §6a): attempted now, at the pace
            let key = WorkKey::Delivery(id);
            let mut timers = self.lock();
            if !timers.start(&key) {
                continue;
            }
            drop(timers);
            self.resolve(key, None, true);
        }
        self.pump();
    }

    /// Held deliveries whose deadline came fail (or go first), and held first attempts move
    /// their contacts on.
    pub(super) fn sweep(&mut self, now: Timestamp) {
        let swept = {
            let mut dests = self.dests.lock();
            // the work waiting per destination status (GET /metrics)
            let mut waiting = [0u64; 3];
            for entry in dests.entries.values() {
                waiting[entry.state.health(now) as usize] += entry.waiting.len() as u64;
            }
            for (health, n) in [Health::Healthy, Health::Throttled, Health::Failing]
                .into_iter()
                .zip(waiting)
            {
                hookline_core::metrics::set_destination_waiting(health.as_str(), n);
            }
            if dests.held == 0 {
                return;
            }
            dests.sweep(now, self.dest_concurrency)
        };
        for delivery in swept.move_on {
            let engine = self.engine.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.move_on_held(&delivery).await {
                    // its first attempt moves it when it is made
                    tracing::warn!(delivery_id = %delivery.id, error = %e, "moving a held delivery's contact on failed");
                }
            });
        }
        for (held, health) in swept.expired {
            let (engine, timers) = (self.engine.clone(), self.timers.clone());
            tokio::spawn(async move {
                let result = engine.fail_held(*held.delivery, health).await;
                finished(&timers, held.key, result, engine.ports.clock.now());
            });
        }
    }
}
