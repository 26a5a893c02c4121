//! Lambda `stats-query` (API Gateway HTTP API): statistics and deliveries.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (engine, _queue) = hookline_aws::lambda::init().await?;
    lambda_http::run(hookline_aws::http_api::stats_routes(engine)).await
}
