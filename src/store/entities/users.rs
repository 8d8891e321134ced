//! A TikTok customer the shop has talked to.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// TikTok's open id of the customer (a string: 19-digit ids lose precision as floats).
    #[sea_orm(unique)]
    pub tiktok_user_id: String,
    pub username: Option<String>,
    pub phone: Option<String>,
    /// The customer's last message: replies are allowed for 48 h after it.
    pub last_inbound_at: Option<DateTimeUtc>,
    /// The customer said "stop": the bot sends nothing unprompted.
    pub opted_out: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::conversations::Entity")]
    Conversations,
    #[sea_orm(has_many = "super::orders::Entity")]
    Orders,
    #[sea_orm(has_many = "super::reservations::Entity")]
    Reservations,
}

impl Related<super::conversations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Conversations.def()
    }
}

impl Related<super::orders::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Orders.def()
    }
}

impl Model {
    /// What the customer goes by on TikTok: their username, else their open id.
    pub fn handle(&self) -> &str {
        self.username.as_deref().unwrap_or(&self.tiktok_user_id)
    }
}

impl ActiveModelBehavior for ActiveModel {}
