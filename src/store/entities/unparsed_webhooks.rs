//! Signed webhooks the bot could not read (a new content type, a missing field), kept raw with the reason:
//! acknowledged to TikTok (which would retry a refusal for 72 hours), never lost.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "unparsed_webhooks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub received_at: DateTimeUtc,
    /// The envelope's `event`, when it could be read.
    pub event: Option<String>,
    /// Why it could not be read.
    pub reason: String,
    /// The body as it arrived.
    pub body: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
