//! Lambda `scenario-advance` (SQS consumer, partial batch failures): runs conditions and waits, creates deliveries.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hookline_aws::lambda::run_sqs_consumer().await
}
