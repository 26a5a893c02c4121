//! Deliveries and their attempts: each delivery's state in its step's sharded partitions, the
//! request kept apart, and the sparse index of failed ones. (The statistics counters are in
//! `counters.rs`.)
//!
//! The parts: `items.rs` (a delivery's items and their keys), `list.rs` (the list's reads);
//! the store's port is here.

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use hookline_core::domain::delivery::{Attempt, Delivery, DeliveryStatus, Handoff};
use hookline_core::domain::ids::{delivery_step_key, step_key};
use hookline_core::domain::time::to_millis;
use hookline_core::ports::{
    BadCursor, DeliveryFilter, DeliveryStore, Page, Pass, StepCounts, StoreResult,
};
use jiff::Timestamp;

use super::*;

mod items;
mod list;
use items::*;

/// Most deliveries one list call reads when a status filter leaves few of them.
const MAX_EXAMINED: usize = 1_000;

impl DynamoStore {
    /// The compare-and-set behind every attempt (a first try, a retry, a resend): the delivery
    /// moves from `from` after as many attempts as `d` (as read) has to `status`, with the
    /// attempt appended (the whole kept list, not an append: the item never grows past 20
    /// attempts) and its next attempt time. One conditional `UpdateItem` of the state: the
    /// counters follow from the stream (`counters.rs`). `Ok(false)`: someone recorded it first.
    async fn move_delivery(
        &self,
        d: &Delivery,
        from: DeliveryStatus,
        attempt: Option<&Attempt>,
        status: DeliveryStatus,
        next_attempt_at: Option<Timestamp>,
    ) -> StoreResult<bool> {
        let mut sets = vec!["attempt_count = :count", "#st = :status"];
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(known_state_key(&d.id)?))
            .condition_expression(
                "attribute_exists(pk) AND attempt_count = :before AND #st = :from",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":before", n(d.attempt_count))
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(
                ":count",
                n(d.attempt_count + u32::from(attempt.is_some())),
            );
        if let Some(a) = attempt {
            sets.push("attempts = :attempts");
            update =
                update.expression_attribute_values(":attempts", attempt_list(&d.kept_with(a))?);
        }
        let mut removes = Vec::new();
        match next_attempt_at {
            Some(t) => {
                sets.push("next_attempt_at = :next");
                update = update.expression_attribute_values(":next", n(to_millis(t)));
            }
            None => removes.push("next_attempt_at"),
        }
        // in the failed deliveries' index while failed, and only then
        if status == DeliveryStatus::Failed && from != DeliveryStatus::Failed {
            sets.extend(["gsi2pk = :failed", "gsi2sk = :id"]);
            update = update
                .expression_attribute_values(":failed", s(failed_key(d)))
                .expression_attribute_values(":id", s(&d.id));
        } else if status != DeliveryStatus::Failed && from == DeliveryStatus::Failed {
            removes.extend(["gsi2pk", "gsi2sk"]);
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        match update.update_expression(expression).send().await {
            Ok(_) => Ok(true),
            Err(err) if is_conditional(&err) => Ok(false),
            Err(err) => Err(anyhow::Error::from(err).context("DynamoDB UpdateItem attempt")),
        }
    }
}

#[async_trait]
impl DeliveryStore for DynamoStore {
    /// One conditional put, no transaction: the record that makes the pass happen once — the
    /// delivery's state for a webhook step (its id derives from the pass; its body is put just
    /// before it, unless it comes accepted by its first attempt), a pass marker otherwise — carrying what the counters need (account,
    /// scenario, step, and `unique`: the contact's first pass of this step). The table's stream
    /// turns it into the counts (`counters.rs`). Where a contact may pass a step twice
    /// (re-entry), a claim `UNQ#{scenario}#{step}#{contact}` naming the first pass decides
    /// `unique` once, and again the same way for a retry of that pass.
    async fn record_pass(&self, pass: &Pass, delivery: Option<&Delivery>) -> StoreResult<bool> {
        let unique = pass.first_for_contact || {
            let mut claim = key(
                format!(
                    "UNQ#{}#{}#{}",
                    pass.scenario_id, pass.step_id, pass.contact_id
                ),
                "UNQ",
            );
            claim.insert("pass".into(), s(&pass.key));
            self.claim(claim, "pass", &pass.key).await? != Claimed::ByAnother
        };
        let mut record = match delivery {
            // accepted at its first attempt (recorded with it): nothing will send it again,
            // so its request is not kept
            Some(d) if d.status == DeliveryStatus::Accepted => state_item(d)?,
            Some(d) => {
                // written once: an item that exists is the body of an earlier try of this
                // pass, which the state then points to (the same bytes on every attempt)
                self.put_new(body_item(d)?, "delivery body").await?;
                state_item(d)?
            }
            None => {
                let mut marker = key(format!("PASS#{}", pass.key), "PASS");
                marker.insert("account".into(), n(pass.account));
                marker.insert("scenario_id".into(), s(&pass.scenario_id));
                marker.insert("step_id".into(), s(&pass.step_id));
                marker.insert("expires_at".into(), ttl(15));
                marker
            }
        };
        record.insert("unique".into(), AttributeValue::Bool(unique));
        self.put_new(record, "pass").await
    }

    /// The state (a strongly consistent `GetItem` at the key its id names), then its body
    /// unless it was accepted at its first attempt (none is kept then). No state: nothing, or
    /// a body whose state was never written (its pass crashed half-way).
    async fn get(&self, id: &str) -> StoreResult<Option<Delivery>> {
        let Some(at) = state_key(id) else {
            return Ok(None);
        };
        let (pk, sk) = (get_s(&at, "pk")?, get_s(&at, "sk")?);
        let Some(state) = self.get_item(pk, &sk).await? else {
            return Ok(None);
        };
        let accepted =
            opt_s(&state, "status").as_deref() == Some(DeliveryStatus::Accepted.as_str());
        let body = if accepted && opt_n(&state, "attempt_count").unwrap_or(0) <= 1 {
            None
        } else {
            self.get_item(format!("DLV#{id}"), "BODY").await?
        };
        whole(id, &state, body.as_ref()).transpose()
    }

    /// An eventually consistent `GetItem` of the state's key only (half a read unit).
    async fn is_recorded(&self, id: &str) -> StoreResult<bool> {
        let Some(at) = state_key(id) else {
            return Ok(false);
        };
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(at))
            .projection_expression("pk")
            .consistent_read(false)
            .send()
            .await
            .context("DynamoDB GetItem delivery recorded")?;
        Ok(out.item.is_some())
    }

    async fn record_attempt(
        &self,
        d: &Delivery,
        attempt: Option<&Attempt>,
        status: DeliveryStatus,
        next_attempt_at: Option<Timestamp>,
    ) -> StoreResult<bool> {
        self.move_delivery(d, DeliveryStatus::Pending, attempt, status, next_attempt_at)
            .await
    }

    async fn record_resend(
        &self,
        d: &Delivery,
        attempt: &Attempt,
        accepted: bool,
    ) -> StoreResult<bool> {
        let status = if accepted {
            DeliveryStatus::Accepted
        } else {
            DeliveryStatus::Failed
        };
        self.move_delivery(d, DeliveryStatus::Failed, Some(attempt), status, None)
            .await
    }

    /// Newest first, from the step's partitions (all [`SHARDS`] merged): the states read there
    /// carry their status; the failed ones come from their sparse index `gsi2`, then their
    /// states. A status filter is applied to what is read: rounds of `limit + 1` candidates
    /// until the page is full, the step has no more, or `MAX_EXAMINED` were looked at — then
    /// the page may hold fewer than `limit` items with a cursor to go on from. The cursor is
    /// `{created ms}.{id}` of the last delivery shown (as the SQLite store's); the id is the
    /// bound (ids sort by creation time).
    async fn list(&self, f: &DeliveryFilter<'_>) -> StoreResult<Page<Delivery>> {
        let mut cursor = match f.cursor {
            None => None,
            Some(c) => match c.split_once('.') {
                Some((ms, id)) if ms.parse::<i64>().is_ok() && delivery_step_key(id).is_some() => {
                    Some(id.to_string())
                }
                _ => return Err(BadCursor.into()),
            },
        };
        let want = f.limit + 1;
        let mut found: Vec<Delivery> = Vec::new();
        let mut examined = 0;
        let next_cursor = loop {
            let candidates = self.newest(f, cursor.as_deref(), want).await?;
            let unread: Vec<&str> = candidates
                .iter()
                .filter(|(_, state)| state.is_none())
                .map(|(id, _)| id.as_str())
                .collect();
            let mut read: HashMap<String, Delivery> = self
                .deliveries(&unread)
                .await?
                .into_iter()
                .map(|d| (d.id.clone(), d))
                .collect();
            for (id, state) in &candidates {
                let d = match state {
                    Some(item) => Some(delivery_from(item, None)?),
                    None => read.remove(id),
                };
                if let Some(d) = d
                    && f.status.is_none_or(|s| s == d.status)
                {
                    found.push(d);
                }
                if found.len() == want {
                    break;
                }
            }
            examined += candidates.len();
            if found.len() == want {
                let last_shown = f.limit.checked_sub(1).and_then(|i| found.get(i));
                break last_shown.map(|d| d.id.clone());
            }
            match candidates.last() {
                // more to look at, but this call has looked at enough: a short page
                Some((last, _)) if candidates.len() == want && examined >= MAX_EXAMINED => {
                    break Some(last.clone());
                }
                Some((last, _)) if candidates.len() == want => cursor = Some(last.clone()),
                _ => break None,
            }
        };
        found.truncate(f.limit);
        // the last id shown (or looked at), with the creation time its id starts with
        let next_cursor = next_cursor.map(|id| {
            let ms = i64::from_str_radix(id.get(4..15).unwrap_or("0"), 16).unwrap_or(0);
            format!("{ms}.{id}")
        });
        Ok(Page {
            items: found,
            next_cursor,
        })
    }

    /// One strongly consistent `Query`: a scenario's counters, an item per step (kept by the
    /// stream, `counters.rs`).
    async fn step_counts(&self, account: i64, scenario_id: &str) -> StoreResult<Vec<StepCounts>> {
        let items = self
            .query_all(super::counters::stat_pk(scenario_id), None)
            .await?;
        let mut counts = Vec::new();
        for item in items.iter() {
            if opt_n(item, "account") != Some(account) {
                continue;
            }
            let get = |k: &str| opt_n(item, k).unwrap_or(0).max(0) as u64;
            counts.push(StepCounts {
                step_id: get_s(item, "sk")?,
                passes: get("passes"),
                unique_contacts: get("unique_contacts"),
                accepted: get("accepted"),
                pending: get("pending"),
                failed: get("failed"),
            });
        }
        Ok(counts)
    }
}
