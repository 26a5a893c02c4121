//! Lambda `stats-query`: statistics and deliveries (API Gateway HTTP API), and the table's
//! stream, from which it keeps the statistics counters.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hookline_aws::lambda::run_stats_query().await
}
