//! Which scenarios an event reads on DynamoDB: only the active ones of its account (their copies
//! in one partition), however many drafts and archived scenarios the account has, with one
//! query for an event or a whole batch; scenarios activated before those copies existed are
//! found once and copied.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use hookline_aws::lambda::{Clients, engine_with};
use hookline_core::Hookline;
use hookline_core::domain::retry::RetryPolicy;
use hookline_core::domain::scenario::ScenarioRecord;
use hookline_core::ports::{Page, ScenarioStore, StoreResult, Version};
use serde_json::json;
use support::Aws;

/// Counts the items every DynamoDB Query returns (and the queries, in `.1`).
#[derive(Debug, Clone, Default)]
struct ItemsRead(Arc<AtomicUsize>, Arc<AtomicUsize>);

impl Intercept for ItemsRead {
    fn name(&self) -> &'static str {
        "items-read"
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(output) = ctx.output_or_error()
            && let Some(q) = output.downcast_ref::<QueryOutput>()
        {
            self.0.fetch_add(q.items().len(), Ordering::SeqCst);
            self.1.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

fn engine(aws: &Aws, read: &ItemsRead) -> Hookline {
    let clients = Clients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&aws.config)
                .interceptor(read.clone())
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::new(&aws.config),
        scheduler: aws_sdk_scheduler::Client::new(&aws.config),
    };
    engine_with(clients, &aws.settings).unwrap().0
}

fn def(trigger: &str) -> serde_json::Value {
    json!({"name": "history", "trigger": {"type": trigger}, "start": "hook",
           "steps": [{"id": "hook", "type": "send_webhook", "url": "https://example.com/h", "next": null}]})
}

/// A new contact each time (without re-entry, a contact enters a scenario once).
fn event(id: &str) -> serde_json::Value {
    let contact = id.trim_start_matches('e').parse::<i64>().unwrap() + 1;
    json!({"id": id, "type": "group_added", "contact": {"id": contact, "email": "a@example.org"}})
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_reads_only_the_active_scenarios_of_its_account() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let read = ItemsRead::default();
    let engine = engine(&aws, &read);
    // history: 15 drafts, 15 archived, one active of another trigger, and the one that matters
    for i in 0..30 {
        let id = engine
            .create_scenario(1, def("group_added"))
            .await
            .unwrap()
            .id;
        if i % 2 == 1 {
            engine.activate_scenario(1, &id).await.unwrap();
            engine.archive_scenario(1, &id).await.unwrap();
        }
    }
    let other = engine
        .create_scenario(1, def("form_subscribed"))
        .await
        .unwrap()
        .id;
    engine.activate_scenario(1, &other).await.unwrap();
    let live = engine
        .create_scenario(1, def("group_added"))
        .await
        .unwrap()
        .id;
    engine.activate_scenario(1, &live).await.unwrap();

    let first = engine.intake(1, event("e0")).await.unwrap();
    assert_eq!(first.enrollments.len(), 1);
    read.0.store(0, Ordering::SeqCst);
    read.1.store(0, Ordering::SeqCst);
    for i in 1..=5 {
        let answer = engine.intake(1, event(&format!("e{i}"))).await.unwrap();
        assert_eq!(answer.enrollments.len(), 1);
        assert_eq!(answer.enrollments[0].scenario_id, live);
    }
    assert_eq!(
        read.0.load(Ordering::SeqCst),
        5 * 2,
        "an event read more than its account's two active scenarios"
    );
    assert_eq!(read.1.load(Ordering::SeqCst), 5, "one query per event");

    // archived: no longer read, no longer enrolling
    engine.archive_scenario(1, &live).await.unwrap();
    let answer = engine.intake(1, event("e9")).await.unwrap();
    assert!(answer.enrollments.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn scenarios_activated_before_the_index_are_copied_once() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let read = ItemsRead::default();
    let before = engine(&aws, &read);
    let old = before
        .create_scenario(1, def("group_added"))
        .await
        .unwrap()
        .id;
    before.activate_scenario(1, &old).await.unwrap();
    let gone = before
        .create_scenario(1, def("group_added"))
        .await
        .unwrap()
        .id;
    before.activate_scenario(1, &gone).await.unwrap();
    before.archive_scenario(1, &gone).await.unwrap();
    // as an older version left it: no active copy in the account's partition (and the marker
    // of the copies kept per trigger type, which is not this index's)
    let ddb = aws_sdk_dynamodb::Client::new(&aws.config);
    use aws_sdk_dynamodb::types::AttributeValue::S;
    ddb.put_item()
        .table_name(&aws.settings.table)
        .item("pk", S("ACCT#1".into()))
        .item("sk", S("ACTIVE-INDEX".into()))
        .send()
        .await
        .unwrap();
    ddb.delete_item()
        .table_name(&aws.settings.table)
        .key("pk", S("ACCT#1".into()))
        .key("sk", S("ACTIVE-INDEX#ACCOUNT".into()))
        .send()
        .await
        .unwrap();
    ddb.delete_item()
        .table_name(&aws.settings.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("ACTIVE#1".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("SCN#{old}")),
        )
        .send()
        .await
        .unwrap();

    // a new process, and a burst of eight events: the account's scenarios are read once (two
    // items), then each event reads the one active copy
    read.0.store(0, Ordering::SeqCst);
    let after = engine(&aws, &read);
    let burst = (1..=8).map(|i| {
        let after = after.clone();
        async move { after.intake(1, event(&format!("e{i}"))).await.unwrap() }
    });
    for answer in futures::future::join_all(burst).await {
        assert_eq!(answer.enrollments.len(), 1);
        assert_eq!(answer.enrollments[0].scenario_id, old);
    }
    assert_eq!(
        read.0.load(Ordering::SeqCst),
        2 + 8,
        "the index was built more than once"
    );
    // another new process reads the index alone
    read.0.store(0, Ordering::SeqCst);
    let third = engine(&aws, &read);
    let answer = third.intake(1, event("e20")).await.unwrap();
    assert_eq!(answer.enrollments.len(), 1);
    assert_eq!(read.0.load(Ordering::SeqCst), 1);
}

/// A batch of events reads its account's active scenarios with one query (their trigger's and
/// the time-based ones, for every event of it), through `POST /v1/events/batch` and through the
/// intake queue's batch; an activation or an archival counts from the next batch.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_reads_its_accounts_active_scenarios_once() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let read = ItemsRead::default();
    let engine = engine(&aws, &read);
    let activate = |trigger: &'static str| {
        let engine = engine.clone();
        async move {
            let id = engine.create_scenario(1, def(trigger)).await.unwrap().id;
            engine.activate_scenario(1, &id).await.unwrap();
            id
        }
    };
    let first = activate("group_added").await;
    let birthday = json!({"name": "birthday", "trigger": {"type": "date_reached", "field": "birthDate", "yearly": true, "time": "09:00"},
        "start": "hook", "steps": [{"id": "hook", "type": "send_webhook", "url": "https://example.com/h", "next": null}]});
    let timed = engine.create_scenario(1, birthday).await.unwrap().id;
    engine.activate_scenario(1, &timed).await.unwrap();
    engine.intake(1, event("e0")).await.unwrap(); // the account's index marker, once per process
    let events = |from: usize| {
        let events: Vec<_> = (from..from + 30).map(|i| event(&format!("e{i}"))).collect();
        json!({ "events": events })
    };
    let enrolled_in = |items: Vec<hookline_core::app::BatchItem>| {
        items
            .into_iter()
            .map(|item| match item {
                hookline_core::app::BatchItem::Answer(a) => a
                    .enrollments
                    .into_iter()
                    .map(|e| e.scenario_id)
                    .collect::<Vec<_>>(),
                other => panic!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };

    read.1.store(0, Ordering::SeqCst);
    let answers = enrolled_in(engine.intake_batch(1, events(100)).await.unwrap());
    assert_eq!(answers, vec![vec![first.clone()]; 30]);
    assert_eq!(
        read.1.load(Ordering::SeqCst),
        1,
        "30 events of one batch read the account's active scenarios more than once"
    );

    // archived and another activated between two batches: the next batch sees both
    engine.archive_scenario(1, &first).await.unwrap();
    let second = activate("group_added").await;
    read.1.store(0, Ordering::SeqCst);
    let answers = enrolled_in(engine.intake_batch(1, events(200)).await.unwrap());
    assert_eq!(answers, vec![vec![second.clone()]; 30]);
    assert_eq!(read.1.load(Ordering::SeqCst), 1);

    // the intake queue's batch: one query per account of it
    let messages: Vec<(String, String, String)> = (300..310)
        .map(|i| {
            let body = json!({"account": 1, "event": event(&format!("e{i}"))});
            (format!("r{i}"), format!("m{i}"), body.to_string())
        })
        .collect();
    let sqs: hookline_aws::aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(
        support::sqs_event("arn:aws:sqs:us-east-1:123456789012:intake", &messages),
    )
    .unwrap();
    read.1.store(0, Ordering::SeqCst);
    let answer = hookline_aws::lambda::handle_intake_batch(&engine, sqs).await;
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(read.1.load(Ordering::SeqCst), 1);
    // each was taken: the same id again answers as the first time
    for i in 300..310 {
        let again = engine.intake(1, event(&format!("e{i}"))).await.unwrap();
        assert_eq!(again.enrollments.len(), 1, "e{i}");
        assert_eq!(again.enrollments[0].scenario_id, second);
    }
}

/// The same event id again gets its first answer (SPEC §3) with no item per event: the memo its
/// contact's snapshot keeps names the scenarios it matched, whatever was archived or activated
/// since; an event older than the stored snapshot keeps its answer on its own.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_id_gets_its_first_answer_whatever_changed_since() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let engine = engine(&aws, &ItemsRead::default());
    let scenario = |engine: &Hookline| {
        let engine = engine.clone();
        async move {
            let id = engine
                .create_scenario(1, def("group_added"))
                .await
                .unwrap()
                .id;
            engine.activate_scenario(1, &id).await.unwrap();
            id
        }
    };
    let a = scenario(&engine).await;
    let first = engine.intake(1, event("e20")).await.unwrap();
    assert_eq!(first.enrollments.len(), 1);
    assert_eq!(first.enrollments[0].scenario_id, a);
    engine.archive_scenario(1, &a).await.unwrap();
    let none = engine.intake(1, event("e21")).await.unwrap();
    assert!(none.enrollments.is_empty());

    let b = scenario(&engine).await;
    // a second and a third time: the first answer each time (a repeat keeps the first memo)
    for _ in 0..2 {
        assert_eq!(engine.intake(1, event("e20")).await.unwrap(), first);
    }
    assert_eq!(
        engine.intake(1, event("e21")).await.unwrap(),
        none,
        "a repeat enrolled in a scenario activated after the first answer"
    );
    let later = engine.intake(1, event("e22")).await.unwrap();
    assert_eq!(later.enrollments[0].scenario_id, b);

    // an event older than the contact's stored snapshot (not stored, nor its memo)
    let at = |id: &str, time: &str| {
        json!({"id": id, "type": "group_added", "occurredAt": time,
               "contact": {"id": 500, "email": "a@example.org"}})
    };
    engine
        .intake(1, at("e-new", "2026-11-27T12:00:00Z"))
        .await
        .unwrap();
    let old = engine
        .intake(1, at("e-old", "2026-11-27T11:00:00Z"))
        .await
        .unwrap();
    assert!(old.enrollments.is_empty(), "contact 500 entered with e-new");
    engine.archive_scenario(1, &b).await.unwrap();
    let c = scenario(&engine).await;
    assert_eq!(
        engine
            .intake(1, at("e-old", "2026-11-27T11:00:00Z"))
            .await
            .unwrap(),
        old,
        "the older event's repeat enrolled in {c}"
    );
}

/// The engine over `aws` whose first scenario save waits, once it is reached (`reached`), until
/// `release` is sent: another save can come in between its read and its write.
fn engine_with_held_save(
    aws: &Aws,
) -> (
    Hookline,
    Arc<tokio::sync::Notify>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let held = Arc::new(HeldSave {
        inner: aws.store(),
        hold: std::sync::Mutex::new(Some(rx)),
        reached: Arc::default(),
    });
    let reached = held.reached.clone();
    let (engine, _) = hookline_aws::lambda::engine(&aws.config, &aws.settings).unwrap();
    let mut ports = engine.ports.clone();
    ports.scenarios = held;
    (Hookline::new(ports, engine.policy.clone()), reached, tx)
}

/// A scenario store whose first `update` waits for a signal (to force an interleaving).
struct HeldSave {
    inner: hookline_aws::DynamoStore,
    hold: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    reached: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl hookline_core::ports::ScenarioStore for HeldSave {
    async fn insert(&self, r: &ScenarioRecord) -> StoreResult<()> {
        ScenarioStore::insert(&self.inner, r).await
    }
    async fn get(&self, a: i64, id: &str) -> StoreResult<Option<ScenarioRecord>> {
        ScenarioStore::get(&self.inner, a, id).await
    }
    async fn update(&self, r: &ScenarioRecord, v: Version) -> StoreResult<bool> {
        let held = self.hold.lock().unwrap().take();
        if let Some(release) = held {
            self.reached.notify_one();
            let _ = release.await;
        }
        self.inner.update(r, v).await
    }
    async fn list(&self, a: i64, c: Option<&str>, l: usize) -> StoreResult<Page<ScenarioRecord>> {
        ScenarioStore::list(&self.inner, a, c, l).await
    }
    async fn active(&self, a: i64) -> StoreResult<Vec<ScenarioRecord>> {
        self.inner.active(a).await
    }
    async fn active_for_trigger(&self, a: i64, t: &str) -> StoreResult<Vec<ScenarioRecord>> {
        self.inner.active_for_trigger(a, t).await
    }
}

/// A rotation whose read came before a `PUT` of the draft (saved, 200) does not write the old
/// definition back: it answers 409, and the `PUT`'s definition stays, with a secret that
/// `GET …/secret` shows.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_racing_a_put_never_writes_the_old_definition_back() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let engine = engine(&aws, &ItemsRead::default());
    let id = engine
        .create_scenario(1, def("group_added"))
        .await
        .unwrap()
        .id;
    let (held, reached, release) = engine_with_held_save(&aws);
    let rotation = tokio::spawn({
        let (held, id) = (held.clone(), id.clone());
        async move { held.rotate_secret(1, &id, "hook").await }
    });
    reached.notified().await; // the rotation has read the draft; its save waits
    let mut edited = def("group_added");
    edited["name"] = json!("edited while a rotation ran");
    let put = engine.update_scenario(1, &id, edited).await.unwrap();
    assert_eq!(put.def.name, "edited while a rotation ran");
    release.send(()).unwrap();
    let rotated = rotation.await.unwrap();
    assert!(
        matches!(rotated, Err(hookline_core::app::AppError::Conflict(_))),
        "{rotated:?}"
    );
    let stored = engine.get_scenario(1, &id).await.unwrap();
    assert_eq!(
        stored.def.name, "edited while a rotation ran",
        "the rotation wrote the old definition back"
    );
}

/// Of two rotations at once, the one overtaken answers 409: the secret the other answered is
/// the one stored, which signs.
#[tokio::test(flavor = "multi_thread")]
async fn of_two_rotations_at_once_none_answers_a_secret_nothing_signs_with() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let engine = engine(&aws, &ItemsRead::default());
    let id = engine
        .create_scenario(1, def("group_added"))
        .await
        .unwrap()
        .id;
    let (held, reached, release) = engine_with_held_save(&aws);
    let first = tokio::spawn({
        let (held, id) = (held.clone(), id.clone());
        async move { held.rotate_secret(1, &id, "hook").await }
    });
    reached.notified().await;
    let second = engine.rotate_secret(1, &id, "hook").await.unwrap();
    release.send(()).unwrap();
    let first = first.await.unwrap();
    let stored = engine.step_secret(1, &id, "hook").await.unwrap();
    assert_eq!(stored, second, "the secret answered is not the one stored");
    assert!(
        matches!(first, Err(hookline_core::app::AppError::Conflict(_))),
        "answered {first:?} while {stored:?} is stored"
    );
}
