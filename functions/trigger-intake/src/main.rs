//! Lambda `trigger-intake`: `POST /v1/events` and `/v1/events/batch` (API Gateway HTTP API) and
//! the intake queue (SQS): snapshots, enrollments, and their first steps walked.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hookline_aws::lambda::run_trigger_intake().await
}
