//! Hookline on AWS: the store ports on DynamoDB ([`DynamoStore`]), the queue port on SQS and
//! EventBridge Scheduler ([`SqsQueue`]), statistics read up to date from the table's stream
//! ([`stream`]), and what the Lambda binaries share ([`lambda`]).

mod dynamo;
pub mod emf;
pub mod lambda;
mod queue;
pub mod stream;

pub use dynamo::{DynamoDestinations, DynamoStore, SHARDS};
pub use queue::{MAX_SQS_DELAY, QueueRef, SqsQueue, at_expression, schedule_name};

pub use aws_lambda_events;
pub use hookline_http_api as http_api;
