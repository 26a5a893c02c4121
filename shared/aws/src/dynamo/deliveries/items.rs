//! A delivery's items: its state in its step's partitions, its body apart, its key in the
//! index of failed ones, and the delivery read back from them.

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use hookline_core::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use hookline_core::domain::ids::delivery_step_key;
use hookline_core::domain::time::{from_millis, to_millis};

use super::*;

/// One of the [`SHARDS`] partitions of a step's deliveries (`step`: its
/// [`step_key`](hookline_core::domain::ids::step_key)).
pub(super) fn step_pk(step: &str, id: &str) -> String {
    format!("DLVS#{step}#{}", shard_of(id))
}

/// Where a delivery's state is kept: in its step's partitions, sorted by id (ids start with
/// their creation time) — the list reads them there, so no index entry is written per
/// delivery. The id names its step ([`delivery_id`]); `None` for an id it did not make.
pub(super) fn state_key(id: &str) -> Option<Item> {
    let step = delivery_step_key(id)?;
    Some(key(step_pk(step, id), id))
}

pub(super) fn known_state_key(id: &str) -> anyhow::Result<Item> {
    state_key(id).ok_or_else(|| anyhow!("delivery id {id} was not made by delivery_id"))
}

/// The key of a failed delivery in the sparse index `gsi2`: only failed deliveries have one
/// (set when a delivery fails, removed when a resend is accepted), so listing the failed ones
/// — `?status=failed`, resend-failed — reads only them. Its sort key is the id.
pub(super) fn failed_key(d: &Delivery) -> String {
    format!("DLVF#{}#{}#{}", d.scenario_id, d.step_id, shard_of(&d.id))
}

/// The delivery's state: small, rewritten by every attempt, in its step's partition.
pub(super) fn state_item(d: &Delivery) -> anyhow::Result<Item> {
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
pub(super) fn body_item(d: &Delivery) -> anyhow::Result<Item> {
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
pub(super) fn whole(
    id: &str,
    state: &Item,
    body: Option<&Item>,
) -> Option<anyhow::Result<Delivery>> {
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

pub(super) fn expires_at(d: &Delivery) -> i64 {
    d.deadline.as_second() + 30 * DAY_SECS
}

/// The attempts kept (the first and the last 19), one JSON text each.
pub(super) fn attempt_list(attempts: &[Attempt]) -> anyhow::Result<AttributeValue> {
    let texts = attempts
        .iter()
        .map(|a| serde_json::to_string(a).map(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AttributeValue::L(texts))
}

/// `body`: the body item, if read; a state written before the split carries its own.
pub(super) fn delivery_from(item: &Item, body: Option<&Item>) -> anyhow::Result<Delivery> {
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
