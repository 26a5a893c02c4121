//! infra/template.yaml against what the code needs: each function's package, runtime and
//! handler; the environment the code reads; which queue feeds which consumer; every API route
//! on the function that serves it. (The IAM actions: `template_iam.rs`.)

mod support;
#[path = "support/template.rs"]
mod yaml;

use std::collections::BTreeSet;

use hookline_aws::lambda::ENV_VARS;
use hookline_core::domain::retry::RetryPolicy;
use serde_json::json;
use serde_yaml::Value;
use support::{Aws, http_event};
use tower::ServiceExt;

use yaml::{FUNCTIONS, list, resource, tag, template};
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
    let indexes = list(&table["GlobalSecondaryIndexes"]);
    let names: Vec<&str> = indexes
        .iter()
        .map(|i| i["IndexName"].as_str().unwrap())
        .collect();
    // a step's deliveries are read from their own partitions (no index entry per delivery);
    // only the failed ones have an index
    assert_eq!(names, ["gsi2"], "the failed deliveries");
    // it projects nothing an attempt writes: an entry is written once
    for index in &indexes {
        assert_eq!(
            index["Projection"]["ProjectionType"].as_str(),
            Some("INCLUDE")
        );
        for projected in list(&index["Projection"]["NonKeyAttributes"]) {
            let name = projected.as_str().unwrap();
            assert!(
                !["status", "attempts", "attempt_count", "next_attempt_at"].contains(&name),
                "{:?} projects {name}: every attempt would rewrite its entry",
                index["IndexName"]
            );
        }
    }
}

/// The counters come from the table's stream: stats-query reads it with both images (a status
/// move is old → new), a tumbling window (each call names its `shardId`, the checkpoint's key)
/// and a filter that lets through the records the handler counts; an alarm watches its lag.
#[test]
fn the_table_stream_feeds_the_counters_to_stats_query() {
    let t = template();
    let table = &resource(&t, "Table")["Properties"];
    assert_eq!(
        table["StreamSpecification"]["StreamViewType"].as_str(),
        Some("NEW_AND_OLD_IMAGES")
    );
    let events = resource(&t, "StatsQueryFunction")["Properties"]["Events"]
        .as_mapping()
        .unwrap()
        .clone();
    let streams: Vec<&Value> = events
        .values()
        .filter(|e| e["Type"].as_str() == Some("DynamoDB"))
        .collect();
    assert_eq!(streams.len(), 1, "stats-query reads the table's stream");
    let p = &streams[0]["Properties"];
    assert_eq!(
        tag(&p["Stream"]),
        Some(("GetAtt".into(), "Table.StreamArn".into()))
    );
    assert!(p["TumblingWindowInSeconds"].as_u64().unwrap() >= 1);
    // one batch at a time per shard: the handler's checkpoint is per shard
    assert!(p["ParallelizationFactor"].as_u64().is_none_or(|f| f == 1));
    assert_eq!(p["StartingPosition"].as_str(), Some("TRIM_HORIZON"));
    for f in list(&p["FilterCriteria"]["Filters"]) {
        let pattern: serde_json::Value =
            serde_json::from_str(f["Pattern"].as_str().unwrap()).unwrap();
        let keys = &pattern["dynamodb"]["Keys"];
        assert_eq!(
            keys["pk"]["S"],
            json!([{"prefix": "DLVS#"}, {"prefix": "PASS#"}]),
            "the deliveries' states and the pass markers"
        );
        assert_eq!(keys["sk"]["S"], json!([{"prefix": "dlv_"}, "PASS"]));
    }
    let alarm = &resource(&t, "CountersBehindAlarm")["Properties"];
    assert_eq!(alarm["MetricName"].as_str(), Some("IteratorAge"));
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
    // every route of the API (its OpenAPI description) is in the template, but local mode's
    // `GET /metrics` (on AWS the functions write EMF lines instead)
    for path in hookline_aws::http_api::openapi::document()
        .paths
        .paths
        .keys()
        .filter(|p| *p != "/metrics")
    {
        assert!(
            routed.contains(path),
            "{path} is not routed by the template"
        );
    }
}

/// Time-based triggers: one schedule for the stack, every minute, invoking trigger-intake with
/// the input its handler takes for a tick, through a role that may invoke that function only.
#[test]
fn one_tick_schedule_invokes_trigger_intake_every_minute() {
    let t = template();
    let schedules: Vec<String> = t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Scheduler::Schedule"))
        .map(|(k, _)| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(schedules, vec!["TickSchedule"], "no schedule per contact");
    let tick = &resource(&t, "TickSchedule")["Properties"];
    assert_eq!(tick["ScheduleExpression"].as_str(), Some("rate(1 minute)"));
    assert_eq!(tick["State"].as_str(), Some("ENABLED"));
    assert_eq!(tick["FlexibleTimeWindow"]["Mode"].as_str(), Some("OFF"));
    let target = &tick["Target"];
    assert_eq!(
        tag(&target["Arn"]),
        Some((
            "GetAtt".to_string(),
            "TriggerIntakeFunction.Arn".to_string()
        ))
    );
    let input: serde_json::Value = serde_json::from_str(target["Input"].as_str().unwrap()).unwrap();
    assert_eq!(
        input,
        serde_json::from_str::<serde_json::Value>(hookline_aws::lambda::TICK_INPUT).unwrap()
    );
    assert!(
        hookline_aws::lambda::is_tick(&input),
        "trigger-intake would not see a tick"
    );
    assert!(!hookline_aws::lambda::is_sqs(&input));
    assert_eq!(
        tag(&target["RoleArn"]),
        Some(("GetAtt".to_string(), "TickRole.Arn".to_string()))
    );
    let role = &resource(&t, "TickRole")["Properties"];
    let trust = &list(&role["AssumeRolePolicyDocument"]["Statement"])[0];
    assert_eq!(
        trust["Principal"]["Service"].as_str(),
        Some("scheduler.amazonaws.com")
    );
    let statements: Vec<Value> = list(&role["Policies"])
        .iter()
        .flat_map(|p| list(&p["PolicyDocument"]["Statement"]))
        .collect();
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert_eq!(
        statements[0]["Action"].as_str(),
        Some("lambda:InvokeFunction")
    );
    assert_eq!(
        tag(&statements[0]["Resource"]),
        Some((
            "GetAtt".to_string(),
            "TriggerIntakeFunction.Arn".to_string()
        ))
    );
}
