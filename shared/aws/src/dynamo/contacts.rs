//! Contact snapshots: one item per contact.

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use hookline_core::domain::contact::Contact;
use hookline_core::ports::{ContactStore, StoreResult};
use jiff::Timestamp;

use super::*;

#[async_trait]
impl ContactStore for DynamoStore {
    async fn put(&self, account: i64, contact: &Contact) -> StoreResult<()> {
        let mut item = key(format!("CON#{account}#{}", contact.id), "CON");
        item.insert(
            "snapshot".into(),
            s(serde_json::to_string(&contact.snapshot)?),
        );
        item.insert("updated_at".into(), n(Timestamp::now().as_millisecond()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .context("DynamoDB PutItem contact")?;
        Ok(())
    }

    async fn get(&self, account: i64, id: i64) -> StoreResult<Option<Contact>> {
        let Some(item) = self.get_item(format!("CON#{account}#{id}"), "CON").await? else {
            return Ok(None);
        };
        let value: serde_json::Value = serde_json::from_str(&get_s(&item, "snapshot")?)?;
        Contact::parse(value, "contact")
            .map(Some)
            .map_err(|e| anyhow!("stored contact {id}: {e}"))
    }
}
