//! Stored explicit-listener tokens: hashes, never tokens. Written by
//! `promptwall token`, read by the daemon (which refreshes its table from
//! here every few seconds).

use crate::store::{on_pool, AuditStore, Pool};
use crate::AuditError;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct StoredToken {
    pub id: String,
    /// Hex SHA-256 of the token.
    #[serde(skip)]
    pub hash: String,
    pub user_name: String,
    /// Comma-separated scope names.
    pub scopes: String,
    pub name: Option<String>,
    pub rate_per_minute: Option<f64>,
    pub tokens_per_day: Option<f64>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Clone)]
pub struct TokenStore {
    pool: Pool,
}

const COLUMNS: &str = "id, hash, user_name, scopes, name, rate_per_minute, tokens_per_day, created_at, revoked_at";

impl TokenStore {
    pub fn new(store: &AuditStore) -> TokenStore {
        TokenStore {
            pool: store.pool().clone(),
        }
    }

    pub async fn insert(&self, t: &StoredToken) -> Result<(), AuditError> {
        let sql = format!("INSERT INTO api_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        on_pool!(&self.pool, p => sqlx::query(&sql)
            .bind(&t.id).bind(&t.hash).bind(&t.user_name).bind(&t.scopes).bind(&t.name)
            .bind(t.rate_per_minute).bind(t.tokens_per_day).bind(&t.created_at).bind(&t.revoked_at)
            .execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Every token, newest first (revoked ones included).
    pub async fn list(&self) -> Result<Vec<StoredToken>, AuditError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC, id");
        Ok(on_pool!(&self.pool, p => sqlx::query_as(&sql).fetch_all(p).await?))
    }

    /// Marks `id` revoked at `at`; false when no such live token exists.
    pub async fn revoke(&self, id: &str, at: &str) -> Result<bool, AuditError> {
        let sql = "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
        let n = on_pool!(&self.pool, p => sqlx::query(sql).bind(id).bind(at).execute(p).await?.rows_affected());
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_is_stored_listed_and_revoked_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = AuditStore::open(&format!("sqlite://{}", dir.path().join("a.db").display()))
            .await
            .unwrap();
        let tokens = TokenStore::new(&store);
        let t = StoredToken {
            id: "abc".into(),
            hash: "00".repeat(32),
            user_name: "alice".into(),
            scopes: "messages,chat".into(),
            name: Some("ci".into()),
            rate_per_minute: Some(10.0),
            tokens_per_day: None,
            created_at: "2027-01-15T08:00:00.000Z".into(),
            revoked_at: None,
        };
        tokens.insert(&t).await.unwrap();
        assert_eq!(tokens.list().await.unwrap(), [t]);
        assert!(tokens.revoke("abc", "2027-01-15T09:00:00.000Z").await.unwrap());
        assert!(
            !tokens.revoke("abc", "2027-01-15T10:00:00.000Z").await.unwrap(),
            "already revoked"
        );
        assert!(!tokens.revoke("nope", "2027-01-15T10:00:00.000Z").await.unwrap());
        assert_eq!(
            tokens.list().await.unwrap()[0].revoked_at.as_deref(),
            Some("2027-01-15T09:00:00.000Z")
        );
    }
}
