//! The AWS APIs through moto_server on 127.0.0.1 (started by scripts/test.sh, which sets
//! HOOKLINE_TEST_AWS_ENDPOINT). Every test makes its own table, queues and schedule group.

#![allow(dead_code, clippy::unwrap_used)]

pub mod runtime;

use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use hookline_aws::lambda::Settings;
use hookline_aws::{DynamoStore, QueueRef, SqsQueue};
use hookline_core::domain::retry::RetryPolicy;
use hookline_core::ports::SystemClock;

pub fn endpoint() -> String {
    std::env::var("HOOKLINE_TEST_AWS_ENDPOINT").expect(
        "HOOKLINE_TEST_AWS_ENDPOINT is not set: run scripts/test.sh, which starts moto_server",
    )
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    hookline_aws::lambda::sdk_defaults()
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid_like())
}

fn ulid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// infra/template.yaml, parsed (found from any crate of the repository).
pub fn template() -> serde_yaml::Value {
    // the repository's root: the first folder above this crate's with infra/template.yaml
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("infra/template.yaml"))
        .find(|p| p.exists())
        .unwrap();
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The template's table properties.
fn template_table() -> serde_yaml::Value {
    template()["Resources"]["Table"]["Properties"].clone()
}

/// The template's indexes, as declared (so the tables the tests make cannot drift from the one
/// SAM deploys): name, keys and projection.
fn template_indexes() -> Vec<GlobalSecondaryIndex> {
    let t = template_table();
    let indexes = t["GlobalSecondaryIndexes"].as_sequence().unwrap();
    indexes
        .iter()
        .map(|i| {
            let p = &i["Projection"];
            let attrs = p["NonKeyAttributes"]
                .as_sequence()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect());
            let projection = Projection::builder()
                .projection_type(ProjectionType::from(p["ProjectionType"].as_str().unwrap()))
                .set_non_key_attributes(attrs)
                .build();
            let keys = i["KeySchema"].as_sequence().unwrap().iter().map(|k| {
                KeySchemaElement::builder()
                    .attribute_name(k["AttributeName"].as_str().unwrap())
                    .key_type(KeyType::from(k["KeyType"].as_str().unwrap()))
                    .build()
                    .unwrap()
            });
            GlobalSecondaryIndex::builder()
                .index_name(i["IndexName"].as_str().unwrap())
                .set_key_schema(Some(keys.collect()))
                .projection(projection)
                .build()
                .unwrap()
        })
        .collect()
}

/// The table layout the SAM template declares: its name and its stream's ARN.
pub async fn create_table(config: &aws_config::SdkConfig) -> (String, String) {
    let client = aws_sdk_dynamodb::Client::new(config);
    let name = unique("hookline");
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    let created = client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(
            template_table()["AttributeDefinitions"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|a| attr(a["AttributeName"].as_str().unwrap()))
                .collect(),
        ))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .set_global_secondary_indexes(Some(template_indexes()))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(
                    template_table()["StreamSpecification"]["StreamViewType"]
                        .as_str()
                        .unwrap(),
                ))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let stream = created
        .table_description
        .and_then(|t| t.latest_stream_arn)
        .unwrap();
    (name, stream)
}

/// moto's DynamoDB Streams API: JSON over HTTP/1.1 (moto reads the target, not the signature).
async fn streams(target: &str, body: serde_json::Value) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let endpoint = endpoint();
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: DynamoDBStreams_20120810.{target}\r\n\
         Content-Type: application/x-amz-json-1.0\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, \
         Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(" 200 "), "{target}: {head}\n{body}");
    serde_json::from_str(body).unwrap()
}

/// A fresh queue, as large a message as the template's queue `resource` takes (SQS's default,
/// 256 KiB, where the template sets none: the emulator's own default is 1 MiB).
pub async fn create_queue(
    config: &aws_config::SdkConfig,
    prefix: &str,
    resource: &str,
) -> QueueRef {
    let sqs = aws_sdk_sqs::Client::new(config);
    let max = template()["Resources"][resource]["Properties"]["MaximumMessageSize"]
        .as_u64()
        .unwrap_or(262_144);
    let url = sqs
        .create_queue()
        .queue_name(unique(prefix))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize,
            max.to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attrs.attributes.unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    QueueRef { url, arn }
}

pub struct Aws {
    pub config: aws_config::SdkConfig,
    pub settings: Settings,
    /// The table's stream, and where each of its shards was read up to.
    pub stream_arn: String,
    iterators: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl Aws {
    /// A fresh table, two queues and a schedule group.
    pub async fn fresh(policy: RetryPolicy) -> Aws {
        let config = sdk_config().await;
        let (table, stream_arn) = create_table(&config).await;
        let advance_queue = create_queue(&config, "advance", "AdvanceQueue").await;
        let deliver_queue = create_queue(&config, "deliver", "DeliverQueue").await;
        let group = unique("hookline");
        aws_sdk_scheduler::Client::new(&config)
            .create_schedule_group()
            .name(&group)
            .send()
            .await
            .unwrap();
        Aws {
            settings: Settings {
                table,
                advance_queue,
                deliver_queue,
                schedule_group: group,
                scheduler_role_arn: "arn:aws:iam::123456789012:role/hookline-scheduler".into(),
                policy,
                allow_private_targets: true,
                destination_concurrency: 8,
                deliver_instances: 8,
            },
            config,
            stream_arn,
            iterators: Default::default(),
        }
    }

    /// Plays the table stream's event source mapping (with a tumbling window, as the template
    /// sets it, so each call names its shard): every record not handed over yet goes to
    /// `stats-query`'s stream handler, which keeps the counters. Statistics are read after it.
    pub async fn settle(&self) {
        self.settle_with(&self.store()).await;
    }

    /// [`Aws::settle`] with the handler over this store (a test counts its calls).
    pub async fn settle_with(&self, store: &DynamoStore) {
        let described = streams(
            "DescribeStream",
            serde_json::json!({"StreamArn": self.stream_arn}),
        )
        .await;
        for shard in described["StreamDescription"]["Shards"].as_array().unwrap() {
            let id = shard["ShardId"].as_str().unwrap().to_string();
            let known = self.iterators.lock().unwrap().get(&id).cloned();
            let mut iterator = match known {
                Some(i) => i,
                None => streams(
                    "GetShardIterator",
                    serde_json::json!({"StreamArn": self.stream_arn,
                    "ShardId": id, "ShardIteratorType": "TRIM_HORIZON"}),
                )
                .await["ShardIterator"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            };
            loop {
                let out = streams(
                    "GetRecords",
                    serde_json::json!({"ShardIterator": iterator, "Limit": 1000}),
                )
                .await;
                let mut records = out["Records"].as_array().cloned().unwrap_or_default();
                if records.is_empty() {
                    break;
                }
                for r in &mut records {
                    r["eventSource"] = "aws:dynamodb".into();
                    r["eventSourceARN"] = self.stream_arn.clone().into();
                }
                let payload = serde_json::json!({"Records": records, "shardId": id,
                    "eventSourceARN": self.stream_arn, "state": {},
                    "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:01Z"},
                    "isFinalInvokeForWindow": false, "isWindowTerminatedEarly": false});
                assert!(hookline_aws::lambda::is_stream(&payload));
                // a failed call gets the same batch again (Lambda retries a stream batch until
                // it passes); the next one only after it passed
                let mut tries = 0;
                while let Err(e) = hookline_aws::lambda::handle_stream(store, &payload).await {
                    tries += 1;
                    assert!(tries < 5, "the stream handler keeps failing: {e:#}");
                }
                iterator = out["NextShardIterator"].as_str().unwrap().to_string();
            }
            self.iterators.lock().unwrap().insert(id, iterator);
        }
    }

    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.config),
            &self.settings.table,
        )
    }

    pub fn queue(&self) -> SqsQueue {
        SqsQueue {
            sqs: aws_sdk_sqs::Client::new(&self.config),
            scheduler: aws_sdk_scheduler::Client::new(&self.config),
            advance: self.settings.advance_queue.clone(),
            deliver: self.settings.deliver_queue.clone(),
            schedule_group: self.settings.schedule_group.clone(),
            scheduler_role_arn: self.settings.scheduler_role_arn.clone(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Receives (without deleting) what is visible on a queue now: (receipt handle, id, body).
    pub async fn receive(&self, queue: &QueueRef) -> Vec<(String, String, String)> {
        let out = aws_sdk_sqs::Client::new(&self.config)
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                (
                    m.receipt_handle.unwrap(),
                    m.message_id.unwrap(),
                    m.body.unwrap(),
                )
            })
            .collect()
    }

    pub async fn delete(&self, queue: &QueueRef, receipt: &str) {
        aws_sdk_sqs::Client::new(&self.config)
            .delete_message()
            .queue_url(&queue.url)
            .receipt_handle(receipt)
            .send()
            .await
            .unwrap();
    }
}

/// An SQS event as Lambda's event source mapping hands it to a function.
pub fn sqs_event(queue_arn: &str, messages: &[(String, String, String)]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|(receipt, id, body)| {
            serde_json::json!({
                "messageId": id, "receiptHandle": receipt, "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1798286400000",
                               "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1798286400001"},
                "messageAttributes": {}, "md5OfBody": "0", "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn, "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// An API Gateway HTTP API (payload v2.0) request event.
pub fn http_event(
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&serde_json::Value>,
) -> String {
    let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
    let mut headers = serde_json::json!({"content-type": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com"});
    if let Some(k) = key {
        headers["authorization"] = format!("Bearer {k}").into();
    }
    serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path_only, "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123", "requestId": "req-1", "routeKey": "$default", "stage": "$default",
            "time": "26/Nov/2026:12:00:00 +0000", "timeEpoch": 1798286400000u64,
            "http": {"method": method, "path": path_only, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "test"}
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
    .to_string()
}
