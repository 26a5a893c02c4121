//! Deliveries and their attempts: each delivery's state in its step's sharded partitions, the
//! request kept apart, and the sparse index of failed ones. (The statistics counters are in
//! `counters.rs`.)

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use hookline_core::domain::delivery::{Attempt, Delivery, DeliveryStatus, Handoff};
use hookline_core::domain::ids::{MAX_DELIVERY_MS, delivery_id_floor, delivery_step_key, step_key};
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{
    BadCursor, DeliveryFilter, DeliveryStore, Page, Pass, StepCounts, StoreResult,
};
use jiff::Timestamp;

use super::*;

/// One of the [`SHARDS`] partitions of a step's deliveries (`step`: its [`step_key`]).
fn step_pk(step: &str, id: &str) -> String {
    format!("DLVS#{step}#{}", shard_of(id))
}

/// Where a delivery's state is kept: in its step's partitions, sorted by id (ids start with
/// their creation time) — the list reads them there, so no index entry is written per
/// delivery. The id names its step ([`delivery_id`]); `None` for an id it did not make.
fn state_key(id: &str) -> Option<Item> {
    let step = delivery_step_key(id)?;
    Some(key(step_pk(step, id), id))
}

fn known_state_key(id: &str) -> anyhow::Result<Item> {
    state_key(id).ok_or_else(|| anyhow!("delivery id {id} was not made by delivery_id"))
}

/// The key of a failed delivery in the sparse index `gsi2`: only failed deliveries have one
/// (set when a delivery fails, removed when a resend is accepted), so listing the failed ones
/// — `?status=failed`, resend-failed — reads only them. Its sort key is the id.
fn failed_key(d: &Delivery) -> String {
    format!("DLVF#{}#{}#{}", d.scenario_id, d.step_id, shard_of(&d.id))
}

/// The delivery's state: small, rewritten by every attempt, in its step's partition.
fn state_item(d: &Delivery) -> anyhow::Result<Item> {
    let mut item = known_state_key(&d.id)?;
    item.insert("id".into(), s(&d.id));
    item.insert("account".into(), n(d.account));
    item.insert("scenario_id".into(), s(&d.scenario_id));
    item.insert("step_id".into(), s(&d.step_id));
    item.insert("contact_id".into(), n(d.contact_id));
    item.insert("handoff".into(), s(serde_json::to_string(&d.handoff)?));
    item.insert("status".into(), s(d.status.as_str()));
    item.insert("created_at".into(), n(to_millis(d.created_at)));
    item.insert("deadline".into(), n(to_millis(d.deadline)));
    if let Some(t) = d.next_attempt_at {
        item.insert("next_attempt_at".into(), n(to_millis(t)));
    }
    item.insert("attempts".into(), attempt_list(&d.attempts)?);
    item.insert("attempt_count".into(), n(d.attempt_count));
    if d.status == DeliveryStatus::Failed {
        item.insert("gsi2pk".into(), s(failed_key(d)));
        item.insert("gsi2sk".into(), s(&d.id));
    }
    item.insert("expires_at".into(), n(expires_at(d)));
    Ok(item)
}

/// What the delivery sends (the frozen request): written once, before its state, never
/// rewritten; in its own partition (a list of the step's states never reads it).
fn body_item(d: &Delivery) -> anyhow::Result<Item> {
    let mut item = key(format!("DLV#{}", d.id), "BODY");
    item.insert("url".into(), s(&d.url));
    item.insert("headers".into(), s(serde_json::to_string(&d.headers)?));
    item.insert("payload".into(), s(&d.payload));
    item.insert("expires_at".into(), n(expires_at(d)));
    Ok(item)
}

/// A delivery from its state and body. A state without a body item: an accepted one (its
/// request is not kept when its first attempt was accepted: url, headers and payload come back
/// empty — nothing sends an accepted delivery again), one written before the split (the
/// body's attributes on the state itself), or one whose body its TTL removed first (`None`:
/// the delivery is gone; both expire together, 30 days after the deadline).
fn whole(id: &str, state: &Item, body: Option<&Item>) -> Option<anyhow::Result<Delivery>> {
    let accepted = opt_s(state, "status").as_deref() == Some(DeliveryStatus::Accepted.as_str());
    if body.is_none() && !state.contains_key("payload") && !accepted {
        tracing::warn!(
            delivery_id = id,
            "a delivery's body is gone (TTL): left out"
        );
        return None;
    }
    Some(delivery_from(state, body))
}

fn expires_at(d: &Delivery) -> i64 {
    d.deadline.as_second() + 30 * DAY_SECS
}

/// The attempts kept (the first and the last 19), one JSON text each.
fn attempt_list(attempts: &[Attempt]) -> anyhow::Result<AttributeValue> {
    let texts = attempts
        .iter()
        .map(|a| serde_json::to_string(a).map(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AttributeValue::L(texts))
}

/// `body`: the body item, if read; a state written before the split carries its own.
fn delivery_from(item: &Item, body: Option<&Item>) -> anyhow::Result<Delivery> {
    let body = body.or(item.contains_key("payload").then_some(item));
    let status = get_s(item, "status")?;
    let attempts = match item.get("attempts") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(text) => {
                    serde_json::from_str::<Attempt>(text).map_err(anyhow::Error::from)
                }
                _ => Err(anyhow!("an attempt is not a string")),
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    Ok(Delivery {
        id: get_s(item, "id")?,
        account: get_n(item, "account")?,
        scenario_id: get_s(item, "scenario_id")?,
        step_id: get_s(item, "step_id")?,
        contact_id: get_n(item, "contact_id")?,
        handoff: serde_json::from_str::<Handoff>(&get_s(item, "handoff")?)?,
        url: body
            .map(|b| get_s(b, "url"))
            .transpose()?
            .unwrap_or_default(),
        headers: match body {
            Some(b) => serde_json::from_str(&get_s(b, "headers")?)?,
            None => Vec::new(),
        },
        payload: body
            .map(|b| get_s(b, "payload"))
            .transpose()?
            .unwrap_or_default(),
        status: DeliveryStatus::parse(&status).with_context(|| format!("status {status}"))?,
        created_at: from_millis(get_n(item, "created_at")?),
        deadline: from_millis(get_n(item, "deadline")?),
        next_attempt_at: opt_n(item, "next_attempt_at").map(from_millis),
        attempt_count: opt_n(item, "attempt_count").unwrap_or(attempts.len() as i64) as u32,
        attempts,
    })
}

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

/// Most deliveries one list call reads when a status filter leaves few of them.
const MAX_EXAMINED: usize = 1_000;

impl DynamoStore {
    /// The step's `want` newest deliveries older than `cursor` (all shards merged), newest
    /// first: their ids and, when read from the step's partitions, their states.
    async fn newest(
        &self,
        f: &DeliveryFilter<'_>,
        cursor: Option<&str>,
        want: usize,
    ) -> anyhow::Result<Vec<(String, Option<Item>)>> {
        let queries = (0..SHARDS).map(|shard| self.list_shard(f, cursor, want, shard));
        let mut found: Vec<(String, Option<Item>)> = futures::future::try_join_all(queries)
            .await?
            .into_iter()
            .flatten()
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0));
        found.truncate(want);
        Ok(found)
    }

    /// Up to `want` deliveries of one shard of a step, older than the cursor: the states in
    /// the step's partition, or for `failed` the entries of `gsi2` (keys and `account`).
    async fn list_shard(
        &self,
        f: &DeliveryFilter<'_>,
        cursor: Option<&str>,
        want: usize,
        shard: u32,
    ) -> anyhow::Result<Vec<(String, Option<Item>)>> {
        // ids start with the creation time: `since` is a lower bound on them
        let since = match f.since.map(to_millis) {
            // after the year 2527: nothing was created since
            Some(ms) if ms > MAX_DELIVERY_MS => return Ok(Vec::new()),
            Some(ms) => Some(delivery_id_floor(ms)),
            None => None,
        };
        if let (Some(c), Some(from)) = (cursor, &since)
            && c < from.as_str()
        {
            return Ok(Vec::new()); // the previous page reached back past `since`
        }
        let step = step_key(f.scenario_id, f.step_id);
        let (index, pk, sk, partition) = match f.status {
            Some(DeliveryStatus::Failed) => (
                Some("gsi2"),
                "gsi2pk",
                "gsi2sk",
                format!("DLVF#{}#{}#{shard}", f.scenario_id, f.step_id),
            ),
            _ => (None, "pk", "sk", format!("DLVS#{step}#{shard}")),
        };
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let q = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_string))
                .scan_index_forward(false)
                .limit(want as i32)
                .expression_attribute_names("#pk", pk)
                .expression_attribute_values(":pk", s(&partition))
                .expression_attribute_values(":account", n(f.account))
                .filter_expression("account = :account")
                .set_exclusive_start_key(start.take());
            // strongly consistent on the table (an index cannot be)
            let q = if index.is_none() {
                q.consistent_read(true)
            } else {
                q
            };
            // (a name in the request that no expression uses is refused)
            let q = match (cursor, &since) {
                (None, None) => q,
                _ => q.expression_attribute_names("#sk", sk),
            };
            let q = match (cursor, since.clone()) {
                (Some(c), Some(from)) => q
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :since AND :cursor")
                    .expression_attribute_values(":since", s(from))
                    .expression_attribute_values(":cursor", s(c)),
                (Some(c), None) => q
                    .key_condition_expression("#pk = :pk AND #sk < :cursor")
                    .expression_attribute_values(":cursor", s(c)),
                (None, Some(from)) => q
                    .key_condition_expression("#pk = :pk AND #sk >= :since")
                    .expression_attribute_values(":since", s(from)),
                (None, None) => q.key_condition_expression("#pk = :pk"),
            };
            let out = q.send().await.context("DynamoDB Query deliveries")?;
            for item in out.items.unwrap_or_default() {
                let id = get_s(&item, sk)?;
                if Some(id.as_str()) == cursor {
                    continue; // BETWEEN includes the cursor: the previous page's last
                }
                found.push((id, index.is_none().then_some(item)));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && found.len() < want => start = Some(k),
                _ => return Ok(found),
            }
        }
    }

    /// These deliveries' states, in this order, with strongly consistent `BatchGetItem`s of up
    /// to 100 keys, without their request (the bodies are not read).
    async fn deliveries(&self, ids: &[&str]) -> anyhow::Result<Vec<Delivery>> {
        let mut keys: Vec<Item> = ids.iter().filter_map(|id| state_key(id)).collect();
        let mut got: HashMap<String, Item> = HashMap::new();
        while !keys.is_empty() {
            let rest = keys.split_off(keys.len().min(100));
            let batch = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::replace(&mut keys, rest)))
                .consistent_read(true)
                .build()?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .context("DynamoDB BatchGetItem deliveries")?;
            for item in out.responses.unwrap_or_default().into_values().flatten() {
                got.insert(get_s(&item, "sk")?, item);
            }
            // keys DynamoDB did not get to this time go round again
            if let Some(left) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table))
                && !left.keys.is_empty()
            {
                keys.extend(left.keys);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            // a state gone since the index was read (its TTL) is left out
            if let Some(state) = got.get(*id) {
                found.push(delivery_from(state, None)?);
            }
        }
        Ok(found)
    }
}
