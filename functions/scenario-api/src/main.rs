//! Lambda `scenario-api` (API Gateway HTTP API): scenarios, lifecycle, the Test button, placeholders.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (engine, _queue) = hookline_aws::lambda::init().await?;
    lambda_http::run(hookline_aws::http_api::scenario_routes(engine)).await
}
