//! The destinations' board (what the API shows of a destination) over the items.

use async_trait::async_trait;
use hookline_core::ports::{DestinationBoard, DestinationGate, DestinationState, StoreResult};

use super::*;

#[async_trait]
impl DestinationBoard for DynamoDestinations {
    async fn get(&self, account: i64, url: &str) -> StoreResult<Option<DestinationState>> {
        let out = self
            .store
            .client
            .get_item()
            .table_name(&self.store.table)
            .set_key(Some(Self::item_key(account, url)))
            .send()
            .await
            .context("DynamoDB GetItem destination")?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let (mut state, _, fails) = Self::parse(&item)?;
        state.failures = fails;
        state.in_flight = self
            .lock()
            .get(&(account, url.to_string()))
            .map_or(0, |e| e.in_flight);
        Ok(Some(DestinationState {
            state,
            waiting: None,
        }))
    }

    async fn urls(&self, account: i64) -> StoreResult<Vec<String>> {
        let items = self.store.query_all(format!("DST#{account}"), None).await?;
        Ok(items.iter().filter_map(|i| opt_s(i, "url")).collect())
    }

    fn gate(&self) -> Option<&dyn DestinationGate> {
        Some(self)
    }
}
