//! infra/template.yaml's IAM policies against the actions each function's handlers really
//! call (recorded on moto by an SDK interceptor): no fewer and no more, resource by resource.

mod support;
#[path = "support/template.rs"]
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_sqs::operation::send_message::SendMessageInput;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use hookline_aws::aws_lambda_events::event::sqs::SqsEvent;
use hookline_aws::lambda::{Clients, engine_with, handle_batch};
use hookline_core::Hookline;
use hookline_core::domain::retry::RetryPolicy;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::json;
use serde_yaml::Value;
use support::{Aws, http_event, sqs_event};
use tower::ServiceExt;

use yaml::{FUNCTIONS, list, resource, tag, template};

/// Records the IAM actions behind every AWS call, and the queues messages are sent to.
#[derive(Debug, Clone, Default)]
struct Needs(Arc<Mutex<BTreeSet<String>>>);

impl Intercept for Needs {
    fn name(&self) -> &'static str {
        "iam-needs"
    }

    fn read_before_serialization(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(meta) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        let service = match meta.service() {
            // DynamoDB Streams' actions are dynamodb:* too
            s if s.to_ascii_lowercase().contains("dynamodb") => "dynamodb",
            s if s.eq_ignore_ascii_case("sqs") => "sqs",
            _ => "scheduler",
        };
        let mut needs = self.0.lock().unwrap();
        let input = ctx.input();
        if let Some(tx) = input.downcast_ref::<TransactWriteItemsInput>() {
            // a transaction is authorised item by item
            for w in tx.transact_items.clone().unwrap_or_default() {
                if w.put.is_some() {
                    needs.insert("dynamodb:PutItem".into());
                }
                if w.update.is_some() {
                    needs.insert("dynamodb:UpdateItem".into());
                }
                if w.condition_check.is_some() {
                    needs.insert("dynamodb:ConditionCheckItem".into());
                }
                if w.delete.is_some() {
                    needs.insert("dynamodb:DeleteItem".into());
                }
            }
        } else if let Some(send) = input.downcast_ref::<SendMessageInput>() {
            needs.insert(format!(
                "sqs:SendMessage@{}",
                send.queue_url.clone().unwrap_or_default()
            ));
        } else if let Some(send) = input.downcast_ref::<SendMessageBatchInput>() {
            // authorised as sqs:SendMessage
            needs.insert(format!(
                "sqs:SendMessage@{}",
                send.queue_url.clone().unwrap_or_default()
            ));
        } else if meta.name() == "Query" {
            let index = input
                .downcast_ref::<aws_sdk_dynamodb::operation::query::QueryInput>()
                .and_then(|q| q.index_name.clone());
            needs.insert(format!(
                "dynamodb:Query{}",
                index.map(|i| format!("@index/{i}")).unwrap_or_default()
            ));
        } else {
            needs.insert(format!("{service}:{}", meta.name()));
            if meta.name() == "CreateSchedule" {
                needs.insert("iam:PassRole".into());
            }
        }
        Ok(())
    }
}

fn engine_for(aws: &Aws, needs: &Needs) -> (Hookline, Arc<hookline_aws::SqsQueue>) {
    let clients = Clients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&aws.config)
                .interceptor(needs.clone())
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&aws.config)
                .interceptor(needs.clone())
                .build(),
        ),
        scheduler: aws_sdk_scheduler::Client::from_conf(
            aws_sdk_scheduler::config::Builder::from(&aws.config)
                .interceptor(needs.clone())
                .build(),
        ),
    };
    engine_with(clients, &aws.settings).unwrap()
}

/// stats-query's engine as its `main` builds it: counters brought up to date from the stream.
fn stats_engine_for(aws: &Aws, needs: &Needs) -> (Hookline, Arc<hookline_aws::SqsQueue>) {
    let (engine, queue) = engine_for(aws, needs);
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&aws.config)
            .interceptor(needs.clone())
            .build(),
    );
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&aws.config)
            .interceptor(needs.clone())
            .build(),
    );
    let store = hookline_aws::DynamoStore::new(dynamodb, &aws.settings.table);
    let engine = hookline_aws::lambda::counters_up_to_date(engine, store, streams);
    (engine, queue)
}

/// What the template grants a function: action → resources (logical ids, `X/index/gsi2`, `*`).
fn granted(t: &Value, function: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut grants: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for policy in list(&resource(t, function)["Properties"]["Policies"]) {
        for statement in list(&policy["Statement"]) {
            assert_eq!(statement["Effect"].as_str(), Some("Allow"));
            let resources: BTreeSet<String> = list(&statement["Resource"])
                .iter()
                .map(|r| match tag(r) {
                    Some((kind, target)) if kind == "GetAtt" => {
                        target.trim_end_matches(".Arn").to_string()
                    }
                    Some((_, target)) if target.contains("/index/") => {
                        format!("Table/index/{}", target.rsplit('/').next().unwrap())
                    }
                    Some((_, target)) => target,
                    None => r.as_str().unwrap_or_default().to_string(),
                })
                .collect();
            for action in list(&statement["Action"]) {
                grants
                    .entry(action.as_str().unwrap().to_string())
                    .or_default()
                    .extend(resources.clone());
            }
        }
    }
    grants
}

async fn pump_once(aws: &Aws, engine: &Hookline, queue: &hookline_aws::QueueRef) -> usize {
    let messages = aws.receive(queue).await;
    if messages.is_empty() {
        return 0;
    }
    let event: SqsEvent = serde_json::from_value(sqs_event(&queue.arn, &messages)).unwrap();
    let hookline_core::ports::Pipeline::Queued(q) = &engine.ports.pipeline else {
        panic!("the AWS functions walk the queued path");
    };
    let response = handle_batch(engine, q.as_ref(), event).await;
    assert!(response.batch_item_failures.is_empty());
    for (receipt, _, _) in &messages {
        aws.delete(queue, receipt).await;
    }
    messages.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_policies_grant_what_each_function_calls_and_nothing_more() {
    let t = template();
    let aws = Aws::fresh(RetryPolicy::parse("1h", "20m").unwrap()).await;
    let needs: BTreeMap<&str, Needs> = FUNCTIONS
        .iter()
        .map(|(id, _)| (*id, Needs::default()))
        .collect();
    let engines: BTreeMap<&str, (Hookline, _)> = FUNCTIONS
        .iter()
        .map(|(id, _)| match *id {
            "StatsQueryFunction" => (*id, stats_engine_for(&aws, &needs[id])),
            _ => (*id, engine_for(&aws, &needs[id])),
        })
        .collect();
    let call = |function: &'static str,
                method: &'static str,
                path: String,
                body: Option<serde_json::Value>| {
        let engine = engines[function].0.clone();
        async move {
            let router = match function {
                "TriggerIntakeFunction" => hookline_aws::http_api::intake_routes(engine),
                "ScenarioApiFunction" => hookline_aws::http_api::scenario_routes(engine),
                _ => hookline_aws::http_api::stats_routes(engine),
            };
            let request = lambda_http::request::from_str(&http_event(
                method,
                &path,
                Some("hk_template_test_key_1"),
                body.as_ref(),
            ))
            .unwrap();
            let response = router.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
            )
        }
    };
    // a scenario created and activated through scenario-api; its id
    let create_active = |def: serde_json::Value| {
        let call = &call;
        async move {
            let (status, created) = call(
                "ScenarioApiFunction",
                "POST",
                "/v1/scenarios".into(),
                Some(def),
            )
            .await;
            assert_eq!(status, 201, "{created}");
            let id = created["id"].as_str().unwrap().to_string();
            let activate = format!("/v1/scenarios/{id}/activate");
            let (status, _) = call("ScenarioApiFunction", "POST", activate, None).await;
            assert_eq!(status, 200);
            id
        }
    };
    engines["ScenarioApiFunction"]
        .0
        .register_key("hk_template_test_key_1", 1)
        .await
        .unwrap();
    let rx = Receiver::start(
        "127.0.0.1:0",
        ReceiverOptions {
            fail_first: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // scenario-api: every route
    let def = json!({"name": "iam", "trigger": {"type": "group_added"}, "start": "check",
        "steps": [{"id": "check", "type": "condition", "rule": {"field": "email", "op": "isNotEmpty"}, "yes": "hook", "no": null},
                  {"id": "hook", "type": "send_webhook", "url": rx.url("/h"), "next": "hook2"},
                  {"id": "hook2", "type": "send_webhook", "url": rx.url("/h2"), "next": "long"},
                  {"id": "long", "type": "wait", "duration": "PT2H", "next": null}]});
    let (status, created) = call(
        "ScenarioApiFunction",
        "POST",
        "/v1/scenarios".into(),
        Some(def.clone()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        call(
            "ScenarioApiFunction",
            "PUT",
            format!("/v1/scenarios/{id}"),
            Some(def)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call("ScenarioApiFunction", "GET", "/v1/scenarios".into(), None)
            .await
            .0,
        200
    );
    let (_, copy) = call(
        "ScenarioApiFunction",
        "POST",
        format!("/v1/scenarios/{id}/duplicate"),
        None,
    )
    .await;
    assert_eq!(
        call(
            "ScenarioApiFunction",
            "POST",
            format!("/v1/scenarios/{}/archive", copy["id"].as_str().unwrap()),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            "ScenarioApiFunction",
            "POST",
            format!("/v1/scenarios/{id}/activate"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            "ScenarioApiFunction",
            "GET",
            format!("/v1/scenarios/{id}"),
            None
        )
        .await
        .0,
        200
    );

    // a scenario that starts with a two-hour wait: trigger-intake walks it and sets the schedule
    let waits = json!({"name": "wait first", "trigger": {"type": "form_subscribed"}, "start": "later",
        "steps": [{"id": "later", "type": "wait", "duration": "PT2H", "next": null}]});
    create_active(waits).await;
    let (status, body) = call(
        "TriggerIntakeFunction",
        "POST",
        "/v1/events".into(),
        Some(json!({"id": "e-wait", "type": "form_subscribed", "contact": {"id": 2, "email": "b@example.org"}})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert!(
        needs["TriggerIntakeFunction"]
            .0
            .lock()
            .unwrap()
            .contains("scheduler:CreateSchedule")
    );

    // trigger-intake, then the consumers until the contact waits two hours (a schedule)
    let event =
        json!({"id": "e1", "type": "group_added", "contact": {"id": 1, "email": "a@example.org"}});
    assert_eq!(
        call(
            "TriggerIntakeFunction",
            "POST",
            "/v1/events".into(),
            Some(event.clone())
        )
        .await
        .0,
        202
    );
    assert_eq!(
        call(
            "TriggerIntakeFunction",
            "POST",
            "/v1/events".into(),
            Some(event)
        )
        .await
        .0,
        202
    );
    for _ in 0..40 {
        pump_once(
            &aws,
            &engines["ScenarioAdvanceFunction"].0,
            &aws.settings.advance_queue,
        )
        .await;
        pump_once(
            &aws,
            &engines["WebhookDeliverFunction"].0,
            &aws.settings.deliver_queue,
        )
        .await;
        if rx.count() >= 1
            && !needs["ScenarioAdvanceFunction"]
                .0
                .lock()
                .unwrap()
                .iter()
                .all(|n| !n.starts_with("scheduler"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the failed first attempt's retry (20 min) is a schedule of webhook-deliver
    assert!(
        needs["WebhookDeliverFunction"]
            .0
            .lock()
            .unwrap()
            .contains("scheduler:CreateSchedule")
    );

    // time-based triggers: the activation queues the backfill (scenario-api); intake schedules
    // a contact's occurrence under its minute (far) or queues it (an hour old: at once) and
    // cancels a moved one; the tick sweeps; scenario-advance runs the backfill (a scan) and fires
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let an_hour_ago = now
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap();
    let birthday = json!({"name": "birthday", "trigger": {"type": "date_reached",
        "field": "birthDate", "yearly": true, "time": an_hour_ago.strftime("%H:%M").to_string()},
        "start": "hook", "steps": [{"id": "hook", "type": "send_webhook", "url": rx.url("/bd"),
        "next": null}]});
    create_active(birthday).await;
    let today = an_hour_ago.date();
    let tomorrow = today.tomorrow().unwrap();
    for (event, date, at) in [
        ("t1", today, "2026-01-01T00:00:00Z"),
        ("t2", tomorrow, "2026-01-01T00:00:01Z"),
        ("t3", today, "2026-01-01T00:00:02Z"),
    ] {
        let (status, body) = call(
            "TriggerIntakeFunction",
            "POST",
            "/v1/events".into(),
            Some(json!({"id": event, "type": "contact_updated", "occurredAt": at,
                        "contact": {"id": 7, "email": "t@example.org", "birthDate": date.to_string()}})),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    engines["TriggerIntakeFunction"].0.sweep().await.unwrap();
    let before = rx.count();
    for _ in 0..40 {
        pump_once(
            &aws,
            &engines["ScenarioAdvanceFunction"].0,
            &aws.settings.advance_queue,
        )
        .await;
        pump_once(
            &aws,
            &engines["WebhookDeliverFunction"].0,
            &aws.settings.deliver_queue,
        )
        .await;
        if rx.received().iter().any(|r| r.path == "/bd") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rx.count() > before, "the birthday did not fire");
    // the activation's backfill (queued 10 s ahead): a scan of the account's contacts
    for _ in 0..200 {
        pump_once(
            &aws,
            &engines["ScenarioAdvanceFunction"].0,
            &aws.settings.advance_queue,
        )
        .await;
        if needs["ScenarioAdvanceFunction"]
            .0
            .lock()
            .unwrap()
            .contains("dynamodb:Scan")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // stats-query: its routes bring the counters up to date from the table's stream
    assert_eq!(
        call(
            "StatsQueryFunction",
            "GET",
            format!("/v1/scenarios/{id}/stats"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            "StatsQueryFunction",
            "GET",
            format!("/v1/scenarios/{id}/steps/hook/stats"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            "StatsQueryFunction",
            "GET",
            format!("/v1/scenarios/{id}/steps/hook/deliveries?status=pending"),
            None
        )
        .await
        .0,
        200
    );

    // stats-query: the destinations' health, kept by webhook-deliver (SPEC §6a)
    let (status, body) = call("StatsQueryFunction", "GET", "/v1/destinations".into(), None).await;
    assert_eq!(status, 200, "{body}");
    let listed = body["items"].as_array().unwrap();
    assert!(
        listed.iter().any(|d| d["url"] == json!(rx.url("/h"))),
        "{body}"
    );
    let one = listed[0]["id"].as_str().unwrap().to_string();
    let (status, body) = call(
        "StatsQueryFunction",
        "GET",
        format!("/v1/destinations/{one}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // scenario-api: the step's secret, its rotation, and resends (a failed delivery made
    // through the store port, then resent through the function and the deliver queue)
    for (method, path) in [
        ("GET", format!("/v1/scenarios/{id}/steps/hook/secret")),
        (
            "POST",
            format!("/v1/scenarios/{id}/steps/hook/secret/rotate"),
        ),
    ] {
        let (status, body) = call("ScenarioApiFunction", method, path, None).await;
        assert_eq!(status, 200, "{body}");
    }
    let failed = failed_delivery(&aws, &id, &rx.url("/h")).await;
    // the failed ones are listed from their own index (then their states)
    let (status, body) = call(
        "StatsQueryFunction",
        "GET",
        format!("/v1/scenarios/{id}/steps/hook/deliveries?status=failed"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["items"][0]["id"].as_str()),
        (200, Some(failed.as_str()))
    );
    let (status, body) = call(
        "ScenarioApiFunction",
        "POST",
        format!("/v1/scenarios/{id}/steps/hook/deliveries/{failed}/resend"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = call(
        "ScenarioApiFunction",
        "POST",
        format!("/v1/scenarios/{id}/steps/hook/resend-failed"),
        Some(json!({"since": "2020-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!((status, body), (202, json!({"queued": 1})));
    while pump_once(
        &aws,
        &engines["WebhookDeliverFunction"].0,
        &aws.settings.deliver_queue,
    )
    .await
        > 0
    {}
    // archiving an active scenario deletes its active copy
    let (status, body) = call(
        "ScenarioApiFunction",
        "POST",
        format!("/v1/scenarios/{id}/archive"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let queue_id = |url: &str| {
        if url == aws.settings.advance_queue.url {
            "AdvanceQueue"
        } else if url == aws.settings.deliver_queue.url {
            "DeliverQueue"
        } else {
            "?"
        }
    };
    for (function, _) in FUNCTIONS {
        let used = needs[function].0.lock().unwrap().clone();
        let grants = granted(&t, function);
        let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for need in &used {
            let (action, on) = need.split_once('@').unwrap_or((need, ""));
            let target = match action {
                "sqs:SendMessage" => queue_id(on).to_string(),
                "dynamodb:Query" if !on.is_empty() => format!("Table/{on}"),
                "dynamodb:DescribeStream" | "dynamodb:GetShardIterator" | "dynamodb:GetRecords" => {
                    "Table.StreamArn".into()
                }
                a if a.starts_with("dynamodb:") => "Table".into(),
                "iam:PassRole" => "SchedulerRole".into(),
                _ => "schedule".into(),
            };
            needed.entry(action.to_string()).or_default().insert(target);
        }
        for (action, targets) in &needed {
            let granted_to = grants.get(action).unwrap_or_else(|| {
                panic!("{function} calls {action} but the template does not grant it")
            });
            for target in targets {
                let ok = match target.as_str() {
                    "schedule" => granted_to
                        .iter()
                        .any(|r| r.contains(":schedule/${ScheduleGroup}/")),
                    other => granted_to.contains(other),
                };
                assert!(
                    ok,
                    "{function} calls {action} on {target}; the template grants it on {granted_to:?}"
                );
            }
        }
        for action in grants.keys() {
            assert!(
                needed.contains_key(action),
                "{function} is granted {action} but never calls it (least privilege)"
            );
        }
    }
}

/// A delivery of step `hook` that failed, written through the store port.
async fn failed_delivery(aws: &Aws, scenario: &str, url: &str) -> String {
    use hookline_core::domain::delivery::{Attempt, Delivery, DeliveryStatus, Handoff};
    use hookline_core::ports::{DeliveryStore, Pass};
    let store = aws.store();
    let now = jiff::Timestamp::now();
    let d = Delivery {
        id: hookline_core::domain::ids::delivery_id(scenario, "hook", now, &["iam"]),
        account: 1,
        scenario_id: scenario.into(),
        step_id: "hook".into(),
        contact_id: 9,
        handoff: Handoff {
            enrollment_id: "enr_iam".into(),
            next_step: None,
            seq: 1,
        },
        url: url.into(),
        headers: vec![],
        payload: r#"{"id":"evt_iam"}"#.into(),
        status: DeliveryStatus::Pending,
        created_at: now,
        deadline: now,
        next_attempt_at: Some(now),
        attempt_count: 0,
        attempts: vec![],
    };
    let pass = Pass {
        key: "enr_iam:0:hook".into(),
        account: 1,
        scenario_id: scenario.into(),
        step_id: "hook".into(),
        contact_id: 9,
        at: now,
        first_for_contact: true,
    };
    assert!(store.record_pass(&pass, Some(&d)).await.unwrap());
    let attempt = Attempt {
        at: now,
        status: Some(500),
        error: None,
        duration_ms: 1,
        response_snippet: None,
    };
    assert!(
        store
            .record_attempt(&d, Some(&attempt), DeliveryStatus::Failed, None)
            .await
            .unwrap()
    );
    d.id
}
