//! The port contract suites of hookline-core against the AWS adapters on moto — the same
//! assertions the SQLite adapters pass.

mod support;

use std::time::Duration;

use hookline_aws::stream::CountersUpToDate;
use hookline_core::contract;
use hookline_core::domain::retry::RetryPolicy;
use hookline_core::ports::{Queue, Task};
use support::Aws;

#[tokio::test]
async fn scenario_store() {
    contract::scenario_store(&Aws::fresh(RetryPolicy::default()).await.store()).await;
}

#[tokio::test]
async fn contact_store() {
    contract::contact_store(&Aws::fresh(RetryPolicy::default()).await.store()).await;
}

#[tokio::test]
async fn enrollment_store() {
    contract::enrollment_store(&Aws::fresh(RetryPolicy::default()).await.store()).await;
}

/// The delivery store as stats-query runs it: its counters brought up to date from the
/// table's stream before each reading (they lag the writes by the stream's delay on AWS).
#[tokio::test]
async fn delivery_store() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let streams = aws_sdk_dynamodbstreams::Client::new(&aws.config);
    // a generous budget: the emulator serves one call at a time to tests running at once
    let store = CountersUpToDate::new(aws.store(), streams).with_budget(Duration::from_secs(30));
    contract::delivery_store(&store).await;
}

#[tokio::test]
async fn occurrence_store() {
    contract::occurrence_store(&Aws::fresh(RetryPolicy::default()).await.store()).await;
}

/// Two webhook-deliver instances' boards over one table.
#[tokio::test]
async fn destination_gate() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    contract::destination_gate(|| {
        let board = hookline_aws::DynamoDestinations::new(
            aws.store(),
            std::sync::Arc::new(hookline_core::ports::SystemClock),
            8,
            4,
        );
        std::sync::Arc::new(board) as std::sync::Arc<dyn hookline_core::ports::DestinationBoard>
    })
    .await;
}

#[tokio::test]
async fn key_store() {
    contract::key_store(&Aws::fresh(RetryPolicy::default()).await.store()).await;
}

#[tokio::test]
async fn queue() {
    let aws = std::sync::Arc::new(Aws::fresh(RetryPolicy::default()).await);
    let queue = aws.queue();
    let receive = {
        let aws = aws.clone();
        move || {
            let aws = aws.clone();
            Box::pin(async move {
                let mut tasks = Vec::new();
                for q in [&aws.settings.advance_queue, &aws.settings.deliver_queue] {
                    for (receipt, _, body) in aws.receive(q).await {
                        aws.delete(q, &receipt).await;
                        tasks.push(serde_json::from_str::<Task>(&body).unwrap());
                    }
                }
                tasks
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Task>> + Send>>
        }
    };
    contract::queue(&queue, &receive).await;
}

/// Past SQS's 15 minutes: exactly one one-time schedule at the right time, targeting the right
/// queue with the task as input, deleted after it fires; a shorter delay uses DelaySeconds.
#[tokio::test]
async fn long_delays_become_one_schedule_and_short_ones_use_delay_seconds() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let queue = aws.queue();
    let scheduler = aws_sdk_scheduler::Client::new(&aws.config);
    let now = jiff::Timestamp::now();
    let task = Task::DeliverV1 {
        delivery_id: "dlv_long".into(),
        attempt: Some(0),
        deadline: None,
        slot: None,
        moved_at: None,
    };
    let due = hookline_core::domain::time::add(now, Duration::from_secs(2 * 3600));
    queue.enqueue(&task, due).await.unwrap();
    queue.enqueue(&task, due).await.unwrap(); // a repeat (a redelivered handler): no second schedule
    let listed = scheduler
        .list_schedules()
        .group_name(&aws.settings.schedule_group)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.schedules.len(), 1, "{:?}", listed.schedules);
    let name = hookline_aws::schedule_name(&task, due);
    let got = scheduler
        .get_schedule()
        .group_name(&aws.settings.schedule_group)
        .name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.schedule_expression.as_deref(),
        Some(hookline_aws::at_expression(due).as_str())
    );
    assert_eq!(got.schedule_expression_timezone.as_deref(), Some("UTC"));
    let target = got.target.unwrap();
    assert_eq!(target.arn, aws.settings.deliver_queue.arn);
    assert_eq!(target.role_arn, aws.settings.scheduler_role_arn);
    assert_eq!(
        serde_json::from_str::<Task>(target.input.as_deref().unwrap()).unwrap(),
        task
    );
    assert_eq!(
        got.flexible_time_window.unwrap().mode,
        aws_sdk_scheduler::types::FlexibleTimeWindowMode::Off
    );
    assert_eq!(
        got.action_after_completion,
        Some(aws_sdk_scheduler::types::ActionAfterCompletion::Delete)
    );
    assert!(
        aws.receive(&aws.settings.deliver_queue).await.is_empty(),
        "a long delay went to SQS"
    );

    // 10 minutes: SQS with DelaySeconds, no schedule
    let short = Task::AdvanceV1 {
        enrollment_id: "enr_short".into(),
        step_id: None,
        seq: 1,
        not_before: None,
        at: None,
    };
    queue
        .enqueue(
            &short,
            hookline_core::domain::time::add(now, Duration::from_secs(600)),
        )
        .await
        .unwrap();
    let listed = scheduler
        .list_schedules()
        .group_name(&aws.settings.schedule_group)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.schedules.len(),
        1,
        "a short delay created a schedule"
    );
    let sqs = aws_sdk_sqs::Client::new(&aws.config);
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&aws.settings.advance_queue.url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let delayed = attrs.attributes.unwrap()
        [&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed]
        .clone();
    assert_eq!(delayed, "1");
}
