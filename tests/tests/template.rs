//! infra/template.yaml against what the code needs: each function's package, runtime and
//! handler; the environment the code reads; which queue feeds which consumer and which queue
//! the code sends each task to; every API route on the function that serves it; and the IAM
//! actions each function's handlers really call (recorded on moto), no fewer and no more.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_sqs::operation::send_message::SendMessageInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use hookline_aws::aws_lambda_events::event::sqs::SqsEvent;
use hookline_aws::lambda::{Clients, ENV_VARS, engine_with, handle_batch};
use hookline_core::Hookline;
use hookline_core::domain::retry::RetryPolicy;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::json;
use serde_yaml::Value;
use support::{Aws, http_event, sqs_event};
use tower::ServiceExt;

const FUNCTIONS: &[(&str, &str)] = &[
    ("TriggerIntakeFunction", "trigger-intake"),
    ("ScenarioApiFunction", "scenario-api"),
    ("StatsQueryFunction", "stats-query"),
    ("ScenarioAdvanceFunction", "scenario-advance"),
    ("WebhookDeliverFunction", "webhook-deliver"),
];

fn template() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    let r = &t["Resources"][id];
    assert!(!r.is_null(), "resource {id} is missing");
    r
}

/// `!Ref X` → ("Ref", "X"); `!GetAtt X.Arn` → ("GetAtt", "X.Arn"); `!Sub "…"` → ("Sub", "…").
fn tag(v: &Value) -> Option<(String, String)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_string(),
            t.value.as_str()?.to_string(),
        )),
        _ => None,
    }
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(s) => s.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

#[test]
fn functions_build_from_their_packages_for_provided_al2023_arm64() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Handler"].as_str(), Some("bootstrap"));
    assert_eq!(list(&globals["Architectures"]), vec![Value::from("arm64")]);
    let functions: BTreeSet<String> = t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(k, _)| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        functions,
        FUNCTIONS.iter().map(|(id, _)| id.to_string()).collect(),
        "functions in the template"
    );
    for (id, package) in FUNCTIONS {
        let f = resource(&t, id);
        assert_eq!(
            f["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}"
        );
        let code = f["Properties"]["CodeUri"].as_str().unwrap();
        assert_eq!(code, format!("../functions/{package}"), "{id}");
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../infra")
            .join(code)
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|_| panic!("{id}: no {}", manifest.display()));
        assert!(
            text.contains(&format!("name = \"{package}\"")),
            "{id}: package/binary {package} not in {}",
            manifest.display()
        );
        for key in ["Runtime", "Handler", "Architectures"] {
            assert!(f["Properties"][key].is_null(), "{id} overrides {key}");
        }
    }
}

#[test]
fn the_environment_carries_every_setting_the_code_reads() {
    let t = template();
    let vars = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    let declared: BTreeSet<String> = vars
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    for name in ENV_VARS
        .iter()
        .filter(|n| **n != "HOOKLINE_ALLOW_PRIVATE_TARGETS")
    {
        assert!(
            declared.contains(*name),
            "{name} is read by the functions but not set by the template"
        );
    }
    for (name, value) in vars {
        let name = name.as_str().unwrap();
        assert!(
            ENV_VARS.contains(&name) || name == "RUST_LOG",
            "{name} is set but never read"
        );
        if let Some((kind, target)) = tag(value) {
            let id = target.split('.').next().unwrap();
            if kind == "Ref" && t["Parameters"][id].is_mapping() {
                continue;
            }
            resource(&t, id);
        }
    }
    let expect = |name: &str, kind: &str, target: &str| {
        assert_eq!(
            tag(&vars[name]),
            Some((kind.to_string(), target.to_string())),
            "{name}"
        );
    };
    // the code sends advance tasks to HOOKLINE_ADVANCE_QUEUE_*, deliver tasks to HOOKLINE_DELIVER_QUEUE_*
    expect("HOOKLINE_ADVANCE_QUEUE_URL", "Ref", "AdvanceQueue");
    expect("HOOKLINE_ADVANCE_QUEUE_ARN", "GetAtt", "AdvanceQueue.Arn");
    expect("HOOKLINE_DELIVER_QUEUE_URL", "Ref", "DeliverQueue");
    expect("HOOKLINE_DELIVER_QUEUE_ARN", "GetAtt", "DeliverQueue.Arn");
    expect("HOOKLINE_TABLE", "Ref", "Table");
    expect("HOOKLINE_SCHEDULE_GROUP", "Ref", "ScheduleGroup");
    expect("HOOKLINE_SCHEDULER_ROLE_ARN", "GetAtt", "SchedulerRole.Arn");
    // the settings a deployer passes are parameters with the code's defaults
    assert_eq!(
        t["Parameters"]["RetryWindow"]["Default"].as_str(),
        Some(hookline_core::domain::retry::DEFAULT_WINDOW)
    );
    assert_eq!(
        t["Parameters"]["RetryDelays"]["Default"].as_str(),
        Some(hookline_core::domain::retry::DEFAULT_DELAYS)
    );
}

#[test]
fn each_queue_feeds_its_consumer_with_partial_failures_and_a_dead_letter_queue() {
    let t = template();
    for (function, queue) in [
        ("TriggerIntakeFunction", "IntakeQueue"),
        ("ScenarioAdvanceFunction", "AdvanceQueue"),
        ("WebhookDeliverFunction", "DeliverQueue"),
    ] {
        let events = resource(&t, function)["Properties"]["Events"]
            .as_mapping()
            .unwrap()
            .clone();
        let sqs: Vec<&Value> = events
            .values()
            .filter(|e| e["Type"].as_str() == Some("SQS"))
            .collect();
        assert_eq!(sqs.len(), 1, "{function} has one SQS source");
        let p = &sqs[0]["Properties"];
        assert_eq!(
            tag(&p["Queue"]),
            Some(("GetAtt".into(), format!("{queue}.Arn"))),
            "{function} consumes {queue}"
        );
        assert!(
            list(&p["FunctionResponseTypes"]).contains(&Value::from("ReportBatchItemFailures")),
            "{function}"
        );
        assert!(p["BatchSize"].as_u64().unwrap() <= 10, "{function}");
        let q = &resource(&t, queue)["Properties"];
        let dlq = tag(&q["RedrivePolicy"]["deadLetterTargetArn"]).unwrap().1;
        resource(&t, dlq.trim_end_matches(".Arn"));
        // visibility at least six times the consumer's timeout (AWS's advice for SQS sources)
        let timeout = resource(&t, function)["Properties"]["Timeout"]
            .as_u64()
            .or(t["Globals"]["Function"]["Timeout"].as_u64())
            .unwrap();
        assert!(
            q["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout,
            "{queue} visibility"
        );
    }
    // a platform can send to the intake queue: a managed policy for it, and both as outputs
    let send = &resource(&t, "IntakeSendPolicy")["Properties"]["PolicyDocument"]["Statement"][0];
    assert!(list(&send["Action"]).contains(&Value::from("sqs:SendMessage")));
    assert_eq!(
        tag(&send["Resource"]),
        Some(("GetAtt".into(), "IntakeQueue.Arn".into()))
    );
    for output in ["IntakeQueueUrl", "IntakeSendPolicyArn"] {
        assert!(
            tag(&t["Outputs"][output]["Value"]).is_some(),
            "output {output}"
        );
    }
    let table = &resource(&t, "Table")["Properties"];
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some("expires_at")
    );
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        table["GlobalSecondaryIndexes"][0]["IndexName"].as_str(),
        Some("gsi1")
    );
}

#[tokio::test]
async fn every_route_is_served_by_the_function_the_template_sends_it_to() {
    let t = template();
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let (engine, _) = hookline_aws::lambda::engine(&aws.config, &aws.settings).unwrap();
    let routers = [
        (
            "TriggerIntakeFunction",
            hookline_aws::http_api::intake_routes(engine.clone()),
        ),
        (
            "ScenarioApiFunction",
            hookline_aws::http_api::scenario_routes(engine.clone()),
        ),
        (
            "StatsQueryFunction",
            hookline_aws::http_api::stats_routes(engine.clone()),
        ),
    ];
    let mut routed = BTreeSet::new();
    for (function, router) in &routers {
        let events = resource(&t, function)["Properties"]["Events"]
            .as_mapping()
            .unwrap()
            .clone();
        for event in events
            .values()
            .filter(|e| e["Type"].as_str() == Some("HttpApi"))
        {
            let path = event["Properties"]["Path"].as_str().unwrap().to_string();
            let method = event["Properties"]["Method"].as_str().unwrap().to_string();
            routed.insert(path.clone());
            let concrete = path
                .replace("{id}", "scn_x")
                .replace("{step}", "hook")
                .replace("{delivery}", "dlv_x");
            let request = lambda_http::request::from_str(&http_event(
                &method,
                &concrete,
                None,
                Some(&json!({})),
            ))
            .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            assert!(
                status == 401 || status == 200,
                "{method} {path} is routed to {function}, which answers {status}"
            );
        }
    }
    // every route of the API (its OpenAPI description) is in the template
    for path in hookline_aws::http_api::openapi::document()
        .paths
        .paths
        .keys()
    {
        assert!(
            routed.contains(path),
            "{path} is not routed by the template"
        );
    }
}

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
            s if s.eq_ignore_ascii_case("dynamodb") => "dynamodb",
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

/// What the template grants a function: action → resources (logical ids, `X/index/gsi1`, `*`).
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
        .map(|(id, _)| (*id, engine_for(&aws, &needs[id])))
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
    let (status, created) = call(
        "ScenarioApiFunction",
        "POST",
        "/v1/scenarios".into(),
        Some(waits),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let waits = created["id"].as_str().unwrap().to_string();
    let (status, _) = call(
        "ScenarioApiFunction",
        "POST",
        format!("/v1/scenarios/{waits}/activate"),
        None,
    )
    .await;
    assert_eq!(status, 200);
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

    // stats-query
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
        id: "dlv_failed_for_iam".into(),
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
