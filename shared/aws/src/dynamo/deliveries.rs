//! Deliveries, their attempts, and the sharded statistics counters.

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use hookline_core::domain::delivery::{Attempt, Delivery, DeliveryStatus, Handoff};
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{
    BadCursor, DeliveryFilter, DeliveryStore, Page, Pass, StepCounts, StoreResult,
};
use jiff::Timestamp;

use super::*;

fn created_key(d: &Delivery) -> String {
    format!("{:013}#{}", to_millis(d.created_at), d.id)
}

/// The key of a failed delivery in the sparse index `gsi2`: only failed deliveries have one
/// (set when a delivery fails, removed when a resend is accepted), so listing the failed ones
/// — `?status=failed`, resend-failed — reads only them.
fn failed_key(d: &Delivery) -> String {
    format!("DLVF#{}#{}#{}", d.scenario_id, d.step_id, shard_of(&d.id))
}

/// The delivery's state: small, rewritten by every attempt, and the only part the index
/// `gsi1` sees — its keys and `account`, none of which an attempt changes: the index entry is
/// written once, when the state is put.
fn state_item(d: &Delivery) -> anyhow::Result<Item> {
    let mut item = key(format!("DLV#{}", d.id), "DLV");
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
    item.insert(
        "gsi1pk".into(),
        s(format!(
            "DLVS#{}#{}#{}",
            d.scenario_id,
            d.step_id,
            shard_of(&d.id)
        )),
    );
    item.insert("gsi1sk".into(), s(created_key(d)));
    if d.status == DeliveryStatus::Failed {
        item.insert("gsi2pk".into(), s(failed_key(d)));
        item.insert("gsi2sk".into(), s(created_key(d)));
    }
    item.insert("expires_at".into(), n(expires_at(d)));
    Ok(item)
}

/// What the delivery sends (the frozen request): written once, before its state, never
/// rewritten; beside the state in the same partition, so one `Query` reads both.
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
            .set_key(Some(key(format!("DLV#{}", d.id), "DLV")))
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
            sets.extend(["gsi2pk = :failed", "gsi2sk = :created"]);
            update = update
                .expression_attribute_values(":failed", s(failed_key(d)))
                .expression_attribute_values(":created", s(created_key(d)));
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

    /// The state and the body in one strongly consistent `Query` of the delivery's partition.
    async fn get(&self, id: &str) -> StoreResult<Option<Delivery>> {
        let items = self.query_all(format!("DLV#{id}"), None).await?;
        let part = |sk: &str| items.iter().find(|i| opt_s(i, "sk").as_deref() == Some(sk));
        match part("DLV") {
            Some(state) => whole(id, state, part("BODY")).transpose(),
            // nothing, or a body whose state was never written (its pass crashed half-way)
            None => Ok(None),
        }
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

    /// Newest first. The index holds no status (an attempt never writes to it), so a status
    /// filter is applied to the deliveries read: rounds of `limit + 1` candidates until the
    /// page is full, the step has no more, or [`MAX_EXAMINED`] were looked at — then the page
    /// may hold fewer than `limit` items with a cursor to go on from.
    async fn list(&self, f: &DeliveryFilter<'_>) -> StoreResult<Page<Delivery>> {
        if let Some(c) = f.cursor
            && !(c.len() > 14
                && c.as_bytes()[13] == b'#'
                && c[..13].bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(BadCursor.into());
        }
        let want = f.limit + 1;
        let mut found: Vec<(String, Delivery)> = Vec::new();
        let mut cursor = f.cursor.map(str::to_string);
        let mut examined = 0;
        let next_cursor = loop {
            let keys = self.newest(f, cursor.as_deref(), want).await?;
            let ids: Vec<&str> = keys.iter().map(|(_, id)| id.as_str()).collect();
            let mut read: HashMap<String, Delivery> = self
                .deliveries(&ids)
                .await?
                .into_iter()
                .map(|d| (d.id.clone(), d))
                .collect();
            for (sort_key, id) in &keys {
                if let Some(d) = read.remove(id)
                    && f.status.is_none_or(|s| s == d.status)
                {
                    found.push((sort_key.clone(), d));
                }
                if found.len() == want {
                    break;
                }
            }
            examined += keys.len();
            if found.len() == want {
                let last_shown = f.limit.checked_sub(1).and_then(|i| found.get(i));
                break last_shown.map(|(k, _)| k.clone());
            }
            match keys.last() {
                // more to look at, but this call has looked at enough: a short page
                Some((last, _)) if keys.len() == want && examined >= MAX_EXAMINED => {
                    break Some(last.clone());
                }
                Some((last, _)) if keys.len() == want => cursor = Some(last.clone()),
                _ => break None,
            }
        };
        found.truncate(f.limit);
        Ok(Page {
            items: found.into_iter().map(|(_, d)| d).collect(),
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
    /// The step's `want` newest deliveries older than `cursor` (all shards merged): their index
    /// sort keys and ids, newest first.
    async fn newest(
        &self,
        f: &DeliveryFilter<'_>,
        cursor: Option<&str>,
        want: usize,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let queries = (0..SHARDS).map(|shard| self.list_shard(f, cursor, want, shard));
        let mut keys: Vec<(String, String)> = futures::future::try_join_all(queries)
            .await?
            .into_iter()
            .flatten()
            .collect();
        keys.sort_by(|a, b| b.0.cmp(&a.0));
        keys.truncate(want);
        Ok(keys)
    }

    /// Up to `want` deliveries of one shard of a step's index, older than the cursor: their
    /// index sort keys and ids (the index holds the state's keys and `account` only). Failed
    /// ones come from their own sparse index `gsi2`, the others from `gsi1` (all of them).
    async fn list_shard(
        &self,
        f: &DeliveryFilter<'_>,
        cursor: Option<&str>,
        want: usize,
        shard: u32,
    ) -> anyhow::Result<Vec<(String, String)>> {
        // sort keys start with the creation time (13 digits): `since` is a lower bound on them
        let since = f.since.map(|t| format!("{:013}#", to_millis(t).max(0)));
        if let (Some(c), Some(from)) = (cursor, &since)
            && c < from.as_str()
        {
            return Ok(Vec::new()); // the previous page reached back past `since`
        }
        if since.as_ref().is_some_and(|from| from.len() > 14) {
            return Ok(Vec::new()); // after the year 2286: nothing was created since
        }
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let (index, prefix) = match f.status {
                Some(DeliveryStatus::Failed) => ("gsi2", "DLVF"),
                _ => ("gsi1", "DLVS"),
            };
            let q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .scan_index_forward(false)
                .limit(want as i32)
                .expression_attribute_names("#pk", format!("{index}pk"))
                .expression_attribute_values(
                    ":pk",
                    s(format!("{prefix}#{}#{}#{shard}", f.scenario_id, f.step_id)),
                )
                .expression_attribute_values(":account", n(f.account))
                .filter_expression("account = :account")
                .set_exclusive_start_key(start.take());
            // (a name in the request that no expression uses is refused)
            let q = match (cursor, &since) {
                (None, None) => q,
                _ => q.expression_attribute_names("#sk", format!("{index}sk")),
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
                let sort_key = get_s(&item, &format!("{index}sk"))?;
                if Some(sort_key.as_str()) == cursor {
                    continue; // BETWEEN includes the cursor: the previous page's last
                }
                let pk = get_s(&item, "pk")?;
                let id = pk.strip_prefix("DLV#").context("a delivery's pk")?;
                found.push((sort_key, id.to_string()));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && found.len() < want => start = Some(k),
                _ => return Ok(found),
            }
        }
    }

    /// These deliveries' states, in this order, with strongly consistent `BatchGetItem`s of up
    /// to 100 keys: what a list shows and filters on, without their request (the bodies are
    /// not read; those written before the split carry it on the state).
    async fn deliveries(&self, ids: &[&str]) -> anyhow::Result<Vec<Delivery>> {
        let mut keys: Vec<Item> = ids
            .iter()
            .map(|id| key(format!("DLV#{id}"), "DLV"))
            .collect();
        let mut got: HashMap<(String, String), Item> = HashMap::new();
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
                got.insert((get_s(&item, "pk")?, get_s(&item, "sk")?), item);
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
            if let Some(state) = got.get(&(format!("DLV#{id}"), "DLV".to_string())) {
                found.push(delivery_from(state, None)?);
            }
        }
        Ok(found)
    }
}
