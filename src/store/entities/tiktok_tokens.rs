//! The shop's TikTok tokens. Never logged: the model's Debug output hides them.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tiktok_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Always `shop`: one deployment serves one shop's TikTok account.
    #[sea_orm(unique)]
    pub account: String,
    /// The business account the tokens belong to: TikTok's `open_id` from the code exchange, the
    /// `business_id` of every call.
    pub business_id: Option<String>,
    pub access_token: String,
    pub access_expires_at: DateTimeUtc,
    pub refresh_token: Option<String>,
    pub refresh_expires_at: Option<DateTimeUtc>,
    pub scope: Option<String>,
    pub updated_at: DateTimeUtc,
    /// When TikTok said the authorization was removed (`authorization.removed`): nothing is sent until
    /// the owner connects again.
    pub disconnected_at: Option<DateTimeUtc>,
    /// TikTok's `reason` of that event (1 disconnected by the owner, 2 account deleted, 4 banned, 5
    /// revoked by the developer).
    pub disconnect_reason: Option<i32>,
    /// A process refreshing the tokens holds this lease until then (one refresh across all replicas).
    pub refreshing_until: Option<DateTimeUtc>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiktokToken")
            .field("account", &self.account)
            .field("access_token", &"[REDACTED]")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[REDACTED]"))
            .field("business_id", &self.business_id)
            .field("disconnected_at", &self.disconnected_at)
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
