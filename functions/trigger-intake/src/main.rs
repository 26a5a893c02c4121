//! Lambda `trigger-intake` (API Gateway HTTP API): `POST /v1/events`: intake, enrollment, the first advance enqueued.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (engine, _queue) = hookline_aws::lambda::init().await?;
    lambda_http::run(hookline_aws::http_api::intake_routes(engine)).await
}
