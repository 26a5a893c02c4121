//! Lambda `scenario-api` (API Gateway HTTP API): the console, scenarios, lifecycle, the Test
//! button, placeholders.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hookline_aws::lambda::run_scenario_api().await
}
