//! Lambda `scenario-advance` (SQS consumer, partial batch failures): runs conditions and waits, creates deliveries.

use hookline_aws::aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (engine, queue) = hookline_aws::lambda::init().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let (engine, queue) = (engine.clone(), queue.clone());
        async move {
            Ok::<_, lambda_runtime::Error>(
                hookline_aws::lambda::handle_batch(&engine, queue.as_ref(), event.payload).await,
            )
        }
    }))
    .await
}
