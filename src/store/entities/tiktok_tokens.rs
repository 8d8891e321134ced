//! The shop's TikTok tokens. Never logged: the model's Debug output hides them.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tiktok_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The business account the tokens belong to (`tiktok.business_id`, or `default`).
    #[sea_orm(unique)]
    pub account: String,
    pub access_token: String,
    pub access_expires_at: DateTimeUtc,
    pub refresh_token: Option<String>,
    pub refresh_expires_at: Option<DateTimeUtc>,
    pub scope: Option<String>,
    pub updated_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiktokToken")
            .field("account", &self.account)
            .field("access_token", &"[REDACTED]")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
