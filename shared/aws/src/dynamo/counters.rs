//! The statistics counters, kept from the table's stream.
//!
//! No write of a webhook touches a counter: a pass puts one record (a delivery's state or a
//! pass marker, carrying its account, scenario, step and whether it is the contact's first
//! pass there) and an attempt moves a delivery's status, each one conditional write. The
//! table's stream (new and old images) hands those changes to `stats-query`, which adds up a
//! batch's changes per step and applies them in **one transaction with the stream shard's
//! checkpoint** (the last sequence number applied, a compare-and-set). A batch handed over
//! again — a retry after a crash, a duplicate invocation — applies only the records beyond the
//! checkpoint, so every change counts exactly once; and each change keeps its step's
//! `accepted + pending + failed == passes`, so every transaction does too.
//!
//! Counters lag the writes by the stream's delay (about a second). Only `stats-query` writes
//! them, once per step per batch: a busy step is not a hot key.

use std::collections::BTreeMap;

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde_json::Value;

use super::*;

/// The partition of a scenario's counters (an item per step, `sk` = the step id).
pub(super) fn stat_pk(scenario: &str) -> String {
    format!("STAT#{scenario}")
}

/// Most steps' counters in one transaction (with the checkpoint: 100 items).
const STEPS_PER_TRANSACTION: usize = 99;

/// What one change adds to its step's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deltas {
    pub passes: i64,
    pub unique_contacts: i64,
    pub accepted: i64,
    pub pending: i64,
    pub failed: i64,
}

impl Deltas {
    fn status(&mut self, status: &str, by: i64) -> Option<()> {
        match status {
            "accepted" => self.accepted += by,
            "pending" => self.pending += by,
            "failed" => self.failed += by,
            _ => return None,
        }
        Some(())
    }

    fn add(&mut self, o: &Deltas) {
        self.passes += o.passes;
        self.unique_contacts += o.unique_contacts;
        self.accepted += o.accepted;
        self.pending += o.pending;
        self.failed += o.failed;
    }

    fn fields(&self) -> [(&'static str, i64); 5] {
        [
            ("passes", self.passes),
            ("unique_contacts", self.unique_contacts),
            ("accepted", self.accepted),
            ("pending", self.pending),
            ("failed", self.failed),
        ]
    }
}

/// A step's counters: (account, scenario, step).
pub type StepKey = (i64, String, String);

/// A stream record's sequence number, padded so that texts compare as the numbers do.
fn sequence(record: &Value) -> Option<String> {
    let seq = record.pointer("/dynamodb/SequenceNumber")?.as_str()?;
    Some(format!("{seq:0>40}"))
}

/// A change the counters made themselves (a step's counters, a shard's checkpoint).
fn counters_write(record: &Value) -> bool {
    let (pk, _) = key_of(record).unwrap_or_default();
    pk.starts_with("STAT#") || pk.starts_with("STRM#")
}

/// A stream record's item key (`pk`, `sk`), from its keys or either image.
fn key_of(record: &Value) -> Option<(&str, &str)> {
    let part = |k: &str| {
        ["Keys", "NewImage", "OldImage"]
            .iter()
            .find_map(|i| record.pointer(&format!("/dynamodb/{i}/{k}/S")))
            .and_then(Value::as_str)
    };
    Some((part("pk")?, part("sk")?))
}

/// What a stream record (Lambda's DynamoDB stream event JSON) changes in the counters:
/// a delivery's state put (a pass, under the status it was put with) or moved to another
/// status, or a pass marker put.
/// `None` for every other change.
pub fn deltas_of(record: &Value) -> Option<(StepKey, Deltas)> {
    let event = record.get("eventName")?.as_str()?;
    let image = |name: &str| record.pointer(&format!("/dynamodb/{name}"));
    let attr = |img: Option<&Value>, k: &str, t: &str| -> Option<String> {
        img?.get(k)?.get(t).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let (new, old) = (image("NewImage"), image("OldImage"));
    let (pk, sk) = key_of(record)?;
    // a delivery's state, in its step's partition (its body, `DLV#{id}`, does not count)
    let delivery = pk.starts_with("DLVS#") && sk.starts_with("dlv_");
    let marker = pk.starts_with("PASS#") && sk == "PASS";
    if !delivery && !marker {
        return None;
    }
    let mut d = Deltas::default();
    match event {
        "INSERT" => {
            d.passes = 1;
            if attr(new, "unique", "BOOL").as_deref() == Some("true") {
                d.unique_contacts = 1;
            }
            if delivery {
                d.status(&attr(new, "status", "S")?, 1)?;
            }
        }
        "MODIFY" if delivery => {
            let (was, is) = (attr(old, "status", "S")?, attr(new, "status", "S")?);
            if was == is {
                return None;
            }
            d.status(&was, -1)?;
            d.status(&is, 1)?;
        }
        _ => return None, // a removal (TTL) leaves the counts as they are
    }
    let account = attr(new, "account", "N")?.parse().ok()?;
    let scenario = attr(new, "scenario_id", "S")?;
    let step = attr(new, "step_id", "S")?;
    Some(((account, scenario, step), d))
}

impl DynamoStore {
    /// The table's stream (`DescribeTable`).
    pub async fn stream_arn(&self) -> anyhow::Result<String> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .context("DynamoDB DescribeTable")?
            .table
            .and_then(|t| t.latest_stream_arn)
            .context("the table has no stream")
    }

    /// The last sequence number applied from a stream shard (padded), if any.
    pub async fn stream_checkpoint(&self, shard: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .get_item(format!("STRM#{shard}"), "STRM")
            .await?
            .and_then(|i| opt_s(&i, "seq")))
    }

    /// Applies a batch of stream records of shard `shard` (in stream order) to the counters,
    /// each exactly once whatever was applied before; how many records counted now.
    pub async fn apply_stream(&self, shard: &str, records: &[Value]) -> anyhow::Result<usize> {
        let checkpoint = key(format!("STRM#{shard}"), "STRM");
        for _ in 0..5 {
            let done = self.stream_checkpoint(shard).await?;
            let mut fresh = Vec::new();
            // the last record beyond the checkpoint, counted or not: the checkpoint goes there,
            // so that what follows a batch's last counted change is not read again
            let mut seen: Option<String> = None;
            for r in records {
                let seq = sequence(r).context("a stream record without a sequence number")?;
                if done.as_ref().is_none_or(|d| seq > *d) {
                    if let Some(change) = deltas_of(r) {
                        fresh.push((seq.clone(), change));
                    }
                    // not past the counters' own writes: moving the checkpoint past them would
                    // write another, and so on
                    if !counters_write(r) {
                        seen = seen.max(Some(seq));
                    }
                }
            }
            let Some(seen) = seen else {
                return Ok(0); // all applied before
            };
            let counted = fresh.len();
            let mut runs = chunks(fresh);
            match runs.last_mut() {
                Some((last, _)) => *last = seen,
                None => runs.push((seen, BTreeMap::new())), // the checkpoint alone
            }
            let mut previous = done;
            let mut lost = false;
            for chunk in runs {
                let (last, steps) = chunk;
                let mut writes = Vec::with_capacity(steps.len() + 1);
                for ((account, scenario, step), d) in &steps {
                    writes.push(self.count(*account, scenario, step, d)?);
                }
                writes.push(self.advance_checkpoint(&checkpoint, previous.as_deref(), &last)?);
                match self.transact(writes).await {
                    Ok(()) => previous = Some(last),
                    Err(err) if cancelled(&err) && !conflict_only(&err) => {
                        lost = true; // another invocation moved the checkpoint: read it again
                        break;
                    }
                    Err(err) => {
                        return Err(anyhow::Error::from(err).context("DynamoDB counters"));
                    }
                }
            }
            if !lost {
                return Ok(counted);
            }
        }
        Err(anyhow!(
            "the checkpoint of stream shard {shard} kept moving"
        ))
    }

    /// `ADD` a step's deltas to its counters.
    fn count(
        &self,
        account: i64,
        scenario: &str,
        step: &str,
        d: &Deltas,
    ) -> anyhow::Result<TransactWriteItem> {
        let mut expr = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(stat_pk(scenario), step)))
            .expression_attribute_values(":account", n(account));
        for (field, delta) in d.fields() {
            if delta != 0 {
                expr.push(format!("{field} :{field}"));
                update = update.expression_attribute_values(format!(":{field}"), n(delta));
            }
        }
        let expression = match expr.is_empty() {
            true => "SET account = :account".to_string(), // changes that cancel out
            false => format!("SET account = :account ADD {}", expr.join(", ")),
        };
        let update = update.update_expression(expression).build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The shard's checkpoint moved from `previous` (none: never written) to `last`.
    fn advance_checkpoint(
        &self,
        checkpoint: &Item,
        previous: Option<&str>,
        last: &str,
    ) -> anyhow::Result<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(checkpoint.clone()))
            .update_expression("SET seq = :last, expires_at = :ttl")
            .expression_attribute_values(":last", s(last))
            .expression_attribute_values(":ttl", ttl(2));
        let update = match previous {
            Some(p) => update
                .condition_expression("seq = :previous")
                .expression_attribute_values(":previous", s(p)),
            None => update.condition_expression("attribute_not_exists(pk)"),
        };
        Ok(TransactWriteItem::builder().update(update.build()?).build())
    }
}

/// The changes in runs of at most [`STEPS_PER_TRANSACTION`] steps, in stream order: each with
/// the sequence number of its last record and its deltas summed per step.
fn chunks(changes: Vec<(String, (StepKey, Deltas))>) -> Vec<(String, BTreeMap<StepKey, Deltas>)> {
    let mut out: Vec<(String, BTreeMap<StepKey, Deltas>)> = Vec::new();
    for (seq, (step, d)) in changes {
        let fits = out.last().is_some_and(|(_, steps)| {
            steps.contains_key(&step) || steps.len() < STEPS_PER_TRANSACTION
        });
        if !fits {
            out.push((String::new(), BTreeMap::new()));
        }
        let (last, steps) = out.last_mut().expect("pushed above");
        *last = seq;
        steps.entry(step).or_default().add(&d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(status: &str, unique: bool) -> Value {
        json!({"pk": {"S": "DLVS#0123456789abcdef#3"}, "sk": {"S": "dlv_1"}, "account": {"N": "7"},
               "scenario_id": {"S": "scn_1"}, "step_id": {"S": "hook"},
               "status": {"S": status}, "unique": {"BOOL": unique}})
    }

    fn record(event: &str, seq: &str, old: Option<Value>, new: Option<Value>) -> Value {
        let mut r = json!({"eventName": event, "dynamodb": {"SequenceNumber": seq}});
        if let Some(o) = old {
            r["dynamodb"]["OldImage"] = o;
        }
        if let Some(n) = new {
            r["dynamodb"]["NewImage"] = n;
        }
        r
    }

    fn key_of() -> StepKey {
        (7, "scn_1".into(), "hook".into())
    }

    #[test]
    fn a_pass_counts_once_pending_and_a_status_change_moves_it() {
        let put = record("INSERT", "1", None, Some(state("pending", true)));
        let d = Deltas {
            passes: 1,
            unique_contacts: 1,
            pending: 1,
            ..Deltas::default()
        };
        assert_eq!(deltas_of(&put), Some((key_of(), d)));
        let accepted = record(
            "MODIFY",
            "2",
            Some(state("pending", true)),
            Some(state("accepted", true)),
        );
        let d = Deltas {
            pending: -1,
            accepted: 1,
            ..Deltas::default()
        };
        assert_eq!(deltas_of(&accepted), Some((key_of(), d)));
        // a retry that stays pending, a removal by TTL, a body: nothing
        let retried = record(
            "MODIFY",
            "3",
            Some(state("pending", true)),
            Some(state("pending", true)),
        );
        assert_eq!(deltas_of(&retried), None);
        assert_eq!(
            deltas_of(&record("REMOVE", "4", Some(state("failed", true)), None)),
            None
        );
        let body = json!({"pk": {"S": "DLV#dlv_1"}, "sk": {"S": "BODY"}, "payload": {"S": "{}"}});
        assert_eq!(deltas_of(&record("INSERT", "5", None, Some(body))), None);
        // a state of the layout before (its key was the delivery's own partition)
        let body = json!({"pk": {"S": "DLV#dlv_1"}, "sk": {"S": "DLV"}, "payload": {"S": "{}"}});
        assert_eq!(deltas_of(&record("INSERT", "5", None, Some(body))), None);
    }

    #[test]
    fn a_pass_marker_counts_a_pass_and_a_repeat_visit_is_not_unique() {
        let marker = json!({"pk": {"S": "PASS#enr:1:cond"}, "sk": {"S": "PASS"},
            "account": {"N": "7"}, "scenario_id": {"S": "scn_1"}, "step_id": {"S": "cond"},
            "unique": {"BOOL": false}});
        let d = Deltas {
            passes: 1,
            ..Deltas::default()
        };
        assert_eq!(
            deltas_of(&record("INSERT", "1", None, Some(marker))),
            Some(((7, "scn_1".into(), "cond".into()), d))
        );
    }

    #[test]
    fn the_counters_own_writes_are_told_apart() {
        let own = json!({"pk": {"S": "STRM#shardId-1"}, "sk": {"S": "STRM"}, "seq": {"S": "1"}});
        assert!(counters_write(&record(
            "MODIFY",
            "9",
            Some(own.clone()),
            Some(own)
        )));
        let stat = json!({"pk": {"S": "STAT#scn_1"}, "sk": {"S": "hook"}});
        assert!(counters_write(&record("INSERT", "10", None, Some(stat))));
        assert!(!counters_write(&record(
            "INSERT",
            "11",
            None,
            Some(state("pending", true))
        )));
    }

    #[test]
    fn chunks_sum_per_step_and_hold_at_most_99_steps() {
        let change = |seq: usize, step: usize| {
            (
                format!("{seq:0>40}"),
                (
                    (1, "s".to_string(), format!("step{step}")),
                    Deltas {
                        passes: 1,
                        ..Deltas::default()
                    },
                ),
            )
        };
        // 150 changes over 120 steps: the first 99 steps (with repeats) then the rest
        let changes: Vec<_> = (0..150).map(|i| change(i, i % 120)).collect();
        let out = chunks(changes);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].1.len(), 99);
        assert_eq!(out[0].0, format!("{:0>40}", 98));
        let passes: i64 = out
            .iter()
            .flat_map(|(_, s)| s.values())
            .map(|d| d.passes)
            .sum();
        assert_eq!(passes, 150);
        assert_eq!(out[1].0, format!("{:0>40}", 149));
    }
}
