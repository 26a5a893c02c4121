//! Lambda `stats-query`: statistics and deliveries (API Gateway HTTP API), and the table's
//! stream, from which it keeps the statistics counters.
// Its handler's future (stream catch-up, statistics and the destinations' routes, all awaited
// in one task) is deeper than rustc's default query depth lets it compute the layout of.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hookline_aws::lambda::run_stats_query().await
}
