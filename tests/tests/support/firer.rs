//! A test's own timer firer for the AWS handlers: a clock the test moves, and every
//! SendMessage(Batch) / CreateSchedule recorded (by an SDK interceptor) as the [`Timer`] it becomes —
//! SQS delivering exactly `DelaySeconds` later, EventBridge Scheduler at the worst, 59 s late.
//! The test hands each due timer to the handlers ([`handle`]).

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_scheduler::operation::create_schedule::CreateScheduleInput;
use aws_sdk_sqs::operation::send_message::SendMessageInput;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use hookline_aws::aws_lambda_events::event::sqs::SqsEvent;
use hookline_aws::lambda::{Clients, engine_with_clock, handle_batch};
use hookline_core::Hookline;
use hookline_core::domain::time::add;
use hookline_core::ports::Clock;
use jiff::Timestamp;

use crate::support::{Aws, sqs_event};

/// A clock the test moves.
#[derive(Debug)]
pub struct TestClock(pub Mutex<Timestamp>);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

impl TestClock {
    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap() = t;
    }
}

/// A message on its way: when it arrives, on which queue, its body.
#[derive(Debug, Clone)]
pub struct Timer {
    pub fires: Timestamp,
    pub queue_url_or_arn: String,
    pub body: String,
    pub via_scheduler: bool,
}

/// Records every SendMessage and CreateSchedule as the [`Timer`] it becomes.
#[derive(Debug, Clone)]
pub struct Firer {
    pub clock: Arc<TestClock>,
    pub timers: Arc<Mutex<Vec<Timer>>>,
}

impl Firer {
    pub fn at(start: Timestamp) -> Firer {
        Firer {
            clock: Arc::new(TestClock(Mutex::new(start))),
            timers: Arc::default(),
        }
    }

    /// The earliest timer, taken off.
    pub fn take(&self) -> Option<Timer> {
        let mut timers = self.timers.lock().unwrap();
        timers.sort_by_key(|t| t.fires);
        (!timers.is_empty()).then(|| timers.remove(0))
    }
}

/// How late Scheduler fires here: the worst it may (60-second precision).
pub const SCHEDULER_LATE: Duration = Duration::from_secs(59);

impl Intercept for Firer {
    fn name(&self) -> &'static str {
        "test-firer"
    }

    fn read_before_serialization(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let now = self.clock.now();
        let input = ctx.input();
        if let Some(batch) = input.downcast_ref::<SendMessageBatchInput>() {
            let mut timers = self.timers.lock().unwrap();
            for entry in batch.entries.clone().unwrap_or_default() {
                let delay = entry.delay_seconds.unwrap_or(0) as u64;
                timers.push(Timer {
                    fires: add(now, Duration::from_secs(delay)),
                    queue_url_or_arn: batch.queue_url.clone().unwrap_or_default(),
                    body: entry.message_body,
                    via_scheduler: false,
                });
            }
            return Ok(());
        }
        let timer = if let Some(send) = input.downcast_ref::<SendMessageInput>() {
            let delay = send.delay_seconds.unwrap_or(0) as u64;
            Some(Timer {
                fires: add(now, Duration::from_secs(delay)),
                queue_url_or_arn: send.queue_url.clone().unwrap_or_default(),
                body: send.message_body.clone().unwrap_or_default(),
                via_scheduler: false,
            })
        } else if let Some(schedule) = input.downcast_ref::<CreateScheduleInput>() {
            let expr = schedule.schedule_expression.clone().unwrap_or_default();
            let at = expr.trim_start_matches("at(").trim_end_matches(')');
            let at: Timestamp = format!("{at}Z").parse().unwrap();
            let target = schedule.target.clone().unwrap();
            Some(Timer {
                fires: add(at, SCHEDULER_LATE),
                queue_url_or_arn: target.arn,
                body: target.input.unwrap_or_default(),
                via_scheduler: true,
            })
        } else {
            None
        };
        if let Some(t) = timer {
            self.timers.lock().unwrap().push(t);
        }
        Ok(())
    }
}

pub fn engine(aws: &Aws, firer: &Firer) -> Hookline {
    let clients = Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(&aws.config),
        sqs: aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&aws.config)
                .interceptor(firer.clone())
                .build(),
        ),
        scheduler: aws_sdk_scheduler::Client::from_conf(
            aws_sdk_scheduler::config::Builder::from(&aws.config)
                .interceptor(firer.clone())
                .build(),
        ),
    };
    engine_with_clock(clients, &aws.settings, firer.clock.clone())
        .unwrap()
        .0
}

/// Hands one message body to the handlers, as the event source mapping would.
pub async fn handle(engine: &Hookline, aws: &Aws, timer: &Timer) {
    let arn = if timer.queue_url_or_arn == aws.settings.advance_queue.url
        || timer.queue_url_or_arn == aws.settings.advance_queue.arn
    {
        &aws.settings.advance_queue.arn
    } else {
        &aws.settings.deliver_queue.arn
    };
    let messages = vec![("r".to_string(), "m".to_string(), timer.body.clone())];
    let event: SqsEvent = serde_json::from_value(sqs_event(arn, &messages)).unwrap();
    let hookline_core::ports::Pipeline::Queued(queue) = &engine.ports.pipeline else {
        panic!("the AWS functions walk the queued path");
    };
    let response = handle_batch(engine, queue.as_ref(), event).await;
    assert!(response.batch_item_failures.is_empty(), "{timer:?}");
}
