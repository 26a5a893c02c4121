//! Contact snapshots: one item per contact, applied in the order they occurred.

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValue;
use base64::Engine;
use hookline_core::domain::contact::Contact;
use hookline_core::domain::event::EventMemo;
use hookline_core::ports::{BadCursor, ContactStore, Page, SnapshotPut, StoreResult};
use jiff::Timestamp;

use super::*;

fn parse(item: &Item, id: i64) -> anyhow::Result<Contact> {
    let value: serde_json::Value = serde_json::from_str(&get_s(item, "snapshot")?)?;
    Contact::parse(value, "contact").map_err(|e| anyhow!("stored contact {id}: {e}"))
}

/// A page cursor: the scan's last evaluated key (`pk`, `sk`), base64 of JSON.
fn encode_cursor(key: &Item) -> anyhow::Result<String> {
    let pair = (get_s(key, "pk")?, get_s(key, "sk")?);
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&pair)?))
}

fn decode_cursor(cursor: &str) -> Option<Item> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let (pk, sk): (String, String) = serde_json::from_slice(&bytes).ok()?;
    Some(key(pk, &sk))
}

#[async_trait]
impl ContactStore for DynamoStore {
    /// One conditional `UpdateItem` — applied only when no snapshot that occurred later is
    /// there and the event's slot does not hold this event already — that sets the snapshot
    /// and the event's memo in its slot (`evt{n}id`: the event id, `evt{n}`: the scenarios it
    /// matched), and hands back the item as it was, also when the condition fails (then it
    /// tells a repeat from an older snapshot): one write, no read.
    async fn put(
        &self,
        account: i64,
        contact: &Contact,
        occurred_at: Timestamp,
        memo: &EventMemo,
    ) -> StoreResult<SnapshotPut> {
        let slot = format!("evt{}", memo.slot());
        let slot_id = format!("{slot}id");
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("CON#{account}#{}", contact.id), "CON")))
            .update_expression(
                "SET #snap = :snap, updated_at = :up, occurred_at = :at, #slot = :scn, #sid = :eid",
            )
            .condition_expression(
                "(attribute_not_exists(occurred_at) OR occurred_at <= :at) \
                 AND (attribute_not_exists(#sid) OR #sid <> :eid)",
            )
            .expression_attribute_names("#snap", "snapshot")
            .expression_attribute_names("#slot", &slot)
            .expression_attribute_names("#sid", &slot_id)
            .expression_attribute_values(":snap", s(serde_json::to_string(&contact.snapshot)?))
            .expression_attribute_values(":up", n(Timestamp::now().as_millisecond()))
            .expression_attribute_values(":at", n(occurred_at.as_millisecond()))
            .expression_attribute_values(":scn", s(serde_json::to_string(&memo.scenarios)?))
            .expression_attribute_values(":eid", s(&memo.event_id))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let snapshot = |old: &Item| -> anyhow::Result<Option<Contact>> {
            match old.contains_key("snapshot") {
                true => parse(old, contact.id).map(Some),
                false => Ok(None),
            }
        };
        match result {
            Ok(out) => Ok(SnapshotPut::Applied {
                previous: match &out.attributes {
                    Some(old) => snapshot(old)?,
                    None => None,
                },
            }),
            Err(e) if is_conditional(&e) => {
                let old = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => c.item(),
                    _ => None,
                };
                // the condition fails only on an item that exists, which comes back with it
                let Some(old) = old else {
                    anyhow::bail!(
                        "DynamoDB UpdateItem contact: a failed condition without its item"
                    );
                };
                if opt_s(old, &slot_id).as_deref() != Some(memo.event_id.as_str()) {
                    return Ok(SnapshotPut::Older);
                }
                let scenarios = match opt_s(old, &slot) {
                    Some(text) => serde_json::from_str(&text)?,
                    None => Vec::new(),
                };
                Ok(SnapshotPut::Seen {
                    memo: EventMemo {
                        event_id: memo.event_id.clone(),
                        scenarios,
                    },
                    stored: snapshot(old)?,
                })
            }
            Err(e) => Err(anyhow::Error::from(e).context("DynamoDB UpdateItem contact")),
        }
    }

    async fn get(&self, account: i64, id: i64) -> StoreResult<Option<Contact>> {
        let Some(item) = self.get_item(format!("CON#{account}#{id}"), "CON").await? else {
            return Ok(None);
        };
        parse(&item, id).map(Some)
    }

    /// A scan of the table filtered to the account's contacts (a backfill is rare: one per
    /// activation of a time-based scenario; it reads the whole table once, page by page, and
    /// no index has to be written with every snapshot). `limit` items are examined per page.
    async fn page(
        &self,
        account: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<Contact>> {
        let start = match cursor {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or(BadCursor)?),
        };
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(pk, :prefix) AND sk = :con")
            .expression_attribute_values(":prefix", s(format!("CON#{account}#")))
            .expression_attribute_values(":con", s("CON"))
            .limit(limit.clamp(1, 1_000) as i32)
            // strongly consistent: a contact stored just before the activation is seen
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("DynamoDB Scan contacts")?;
        let mut items = Vec::new();
        for item in out.items.unwrap_or_default() {
            let pk = get_s(&item, "pk")?;
            let id: i64 = pk
                .rsplit('#')
                .next()
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| anyhow!("contact key {pk}"))?;
            match parse(&item, id) {
                Ok(contact) => items.push(contact),
                Err(e) => {
                    tracing::warn!(contact_id = id, error = %e, "an unreadable contact: skipped")
                }
            }
        }
        let next_cursor = match out.last_evaluated_key {
            Some(k) if !k.is_empty() => Some(encode_cursor(&k)?),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }
}
