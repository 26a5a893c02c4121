//! The batches a function is handed: SQS tasks, the intake queue's events, the table's
//! stream.

use anyhow::Context;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use hookline_core::Hookline;
use hookline_core::app::Outcome;
use hookline_core::ports::{Queue, Task};

use crate::DynamoStore;

/// Handles an SQS batch concurrently, one span per message. A message that fails with an
/// error that may pass is reported in `batchItemFailures` (SQS redelivers it); a message that
/// can never succeed (not a task) is logged and acknowledged; a task that asks to run again
/// later is re-enqueued for that time and acknowledged.
pub async fn handle_batch(
    engine: &Hookline,
    queue: &dyn Queue,
    event: SqsEvent,
) -> SqsBatchResponse {
    use tracing::Instrument;
    // the same work twice in one batch (a repeated event's first attempt queued again before
    // the first copy ran, a duplicate from SQS) runs once: copies at once could both POST
    let mut keys = std::collections::HashSet::new();
    let work = event.records.into_iter().map(|record| {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("message", message_id = %id);
        let task = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<Task>(b).ok());
        let copy = task.as_ref().is_some_and(|t| !keys.insert(t.dedupe_key()));
        async move {
            let Some(task) = task else {
                tracing::error!("a message that is not a task was dropped");
                return None;
            };
            if copy {
                tracing::debug!("the same task earlier in this batch: this copy dropped");
                return None;
            }
            let result = match engine.handle(&task).await {
                Ok(Outcome::Done) => Ok(()),
                Ok(Outcome::RetryAt(at)) => queue.enqueue(&task, at).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "message failed; SQS will redeliver it"
                    );
                    Some(id)
                }
            }
        }
        .instrument(span)
    });
    let failed = futures::future::join_all(work).await;
    let mut response = SqsBatchResponse::default();
    for id in failed.into_iter().flatten() {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// A message of the intake queue (SPEC §3): `{"account": <idClient>, "event": {...}}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IntakeMessage {
    account: i64,
    event: serde_json::Value,
}

/// The intake queue's batch: each message is an event of an account, taken exactly as
/// `POST /v1/events/batch` takes it ([`Hookline::intake_batch`]: events of one contact in their
/// order, different contacts at once), one batch per account. A message that is not an intake
/// message or whose event is invalid is logged and reported failed, so that SQS moves it to the
/// dead-letter queue after its last receive; a store failure reports the account's messages
/// failed, and they come back (each event is idempotent by its id). Neither holds up the others.
pub async fn handle_intake_batch(engine: &Hookline, event: SqsEvent) -> SqsBatchResponse {
    use hookline_core::app::BatchItem;
    let mut accounts: Vec<(i64, Vec<String>, Vec<serde_json::Value>)> = Vec::new();
    let mut failed = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let parsed = record
            .body
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("the message has no body"))
            .and_then(|b| serde_json::from_str::<IntakeMessage>(b).map_err(anyhow::Error::from));
        match parsed {
            Ok(m) => match accounts.iter_mut().find(|(a, _, _)| *a == m.account) {
                Some((_, ids, events)) => {
                    ids.push(id);
                    events.push(m.event);
                }
                None => accounts.push((m.account, vec![id], vec![m.event])),
            },
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "not an intake message ({{\"account\", \"event\"}}): left to the dead-letter queue");
                failed.push(id);
            }
        }
    }
    let runs = accounts.into_iter().map(|(account, ids, events)| async move {
        let body = serde_json::json!({ "events": events });
        match engine.intake_batch(account, body).await {
            Ok(items) => ids
                .into_iter()
                .zip(items)
                .filter_map(|(id, item)| match item {
                    BatchItem::Answer(_) => None,
                    BatchItem::Invalid { error, .. } => {
                        tracing::error!(message_id = %id, account, error = %error, "an invalid event: left to the dead-letter queue");
                        Some(id)
                    }
                })
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(account, error = %e, "intake failed; SQS will redeliver the account's messages");
                ids
            }
        }
    });
    failed.extend(futures::future::join_all(runs).await.into_iter().flatten());
    let mut response = SqsBatchResponse::default();
    for id in failed {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// The table's stream (template: a tumbling window, so that each call names its `shardId`):
/// the batch's changes applied to the statistics counters ([`DynamoStore::apply_stream`]). An
/// error fails the call and Lambda hands the batch over again; records already applied are
/// skipped then. Answers the window's (empty) state.
pub async fn handle_stream(
    store: &DynamoStore,
    payload: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let shard = payload
        .get("shardId")
        .and_then(|s| s.as_str())
        .context("a stream batch without shardId (the event source needs a tumbling window)")?;
    let records = payload
        .get("Records")
        .and_then(|r| r.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let counted = store.apply_stream(shard, records).await?;
    tracing::info!(shard, records = records.len(), counted, "counters updated");
    Ok(serde_json::json!({ "state": {}, "batchItemFailures": [] }))
}
