//! Lambda `webhook-deliver` (SQS consumer, partial batch failures): makes attempts, schedules retries, hands contacts back.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hookline_aws::lambda::run_sqs_consumer().await
}
