//! API keys: the key item (what authentication reads) and its listing entry.

use async_trait::async_trait;
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{ApiKey, KeyStore, StoreResult};
use jiff::Timestamp;

use super::*;

#[async_trait]
impl KeyStore for DynamoStore {
    /// The key and its listing entry, in one transaction.
    async fn insert(&self, k: &ApiKey) -> StoreResult<bool> {
        let mut item = key(format!("KEY#{}", k.hash), "KEY");
        item.insert("account".into(), n(k.account));
        item.insert("created_at".into(), n(to_millis(k.created_at)));
        item.insert("prefix".into(), s(&k.prefix));
        let mut listed = key("KEYS".into(), &format!("{}#{}", k.prefix, k.hash));
        listed.insert("hash".into(), s(&k.hash));
        listed.insert("prefix".into(), s(&k.prefix));
        listed.insert("account".into(), n(k.account));
        listed.insert("created_at".into(), n(to_millis(k.created_at)));
        if let Some(at) = k.revoked_at {
            item.insert("revoked_at".into(), n(to_millis(at)));
            listed.insert("revoked_at".into(), n(to_millis(at)));
        }
        let not_exists = Some("attribute_not_exists(pk)");
        let result = self
            .transact(vec![self.put(item, not_exists)?, self.put(listed, None)?])
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if cancelled(&err) && self.exists(format!("KEY#{}", k.hash), "KEY").await? =>
            {
                Ok(false)
            }
            Err(err) => Err(anyhow::Error::from(err).context("DynamoDB TransactWriteItems key")),
        }
    }

    async fn account_for(&self, key_hash: &str) -> StoreResult<Option<i64>> {
        let item = self.get_item(format!("KEY#{key_hash}"), "KEY").await?;
        match item {
            Some(i) if !i.contains_key("revoked_at") => Ok(Some(get_n(&i, "account")?)),
            _ => Ok(None),
        }
    }

    async fn list(&self) -> StoreResult<Vec<ApiKey>> {
        self.query_all("KEYS".into(), None)
            .await?
            .iter()
            .map(|i| {
                Ok(ApiKey {
                    hash: get_s(i, "hash")?,
                    prefix: get_s(i, "prefix")?,
                    account: get_n(i, "account")?,
                    created_at: from_millis(get_n(i, "created_at")?),
                    revoked_at: opt_n(i, "revoked_at").map(from_millis),
                })
            })
            .collect()
    }

    /// The key item first (what [`KeyStore::account_for`] reads), then its listing entry.
    async fn revoke(&self, key_hash: &str, at: Timestamp) -> StoreResult<bool> {
        let Some(item) = self.get_item(format!("KEY#{key_hash}"), "KEY").await? else {
            return Ok(false);
        };
        let prefix = get_s(&item, "prefix").unwrap_or_default();
        if let Some(earlier) = opt_n(&item, "revoked_at") {
            // revoked before; a crash may have left its listing entry behind
            self.mark_listed_revoked(&prefix, key_hash, earlier).await?;
            return Ok(false);
        }
        let revoked = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("KEY#{key_hash}")))
            .key("sk", s("KEY"))
            .update_expression("SET revoked_at = :at")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
            .expression_attribute_values(":at", n(to_millis(at)))
            .send()
            .await;
        match revoked {
            Ok(_) => {}
            Err(e) if is_conditional(&e) => return Ok(false),
            Err(e) => return Err(anyhow::Error::from(e).context("DynamoDB UpdateItem key")),
        }
        self.mark_listed_revoked(&prefix, key_hash, to_millis(at))
            .await?;
        Ok(true)
    }
}

impl DynamoStore {
    async fn mark_listed_revoked(
        &self,
        prefix: &str,
        key_hash: &str,
        at_ms: i64,
    ) -> anyhow::Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("KEYS"))
            .key("sk", s(format!("{prefix}#{key_hash}")))
            .update_expression("SET revoked_at = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", n(at_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional(&e) => Ok(()), // no listing entry: nothing to mark
            Err(e) => Err(anyhow::Error::from(e).context("DynamoDB UpdateItem key listing")),
        }
    }
}
