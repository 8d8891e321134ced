//! A customer's order: what was bought, and how far payment and shipping have come.

use sea_orm::entity::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)", rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Paid,
    Shipped,
    Delivered,
    /// Sent back by the customer; its pieces go back on sale only when staff say so.
    Returned,
    Cancelled,
}

impl OrderStatus {
    /// Whether an order of this status claims its pieces (no other order may have them).
    pub fn claims_items(self) -> bool {
        !matches!(self, OrderStatus::Cancelled | OrderStatus::Returned)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The human-friendly number customers quote ("PH-7K3Q").
    #[sea_orm(unique)]
    pub order_number: String,
    pub user_id: i64,
    pub status: OrderStatus,
    pub subtotal_minor: i64,
    pub shipping_minor: i64,
    pub total_minor: i64,
    pub currency: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    /// The TikTok conversation the order came from, to tell the customer about its progress.
    pub tiktok_conversation_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub paid_at: Option<DateTimeUtc>,
    pub shipped_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
    pub delivered_at: Option<DateTimeUtc>,
    pub returned_at: Option<DateTimeUtc>,
    /// When the customer was reminded to pay (once per order).
    pub payment_reminded_at: Option<DateTimeUtc>,
    /// Who the parcel is addressed to, and where: what a shipping label needs. Set at checkout; the
    /// customer may change it until the order ships.
    pub ship_name: Option<String>,
    pub ship_line1: Option<String>,
    pub ship_line2: Option<String>,
    pub ship_city: Option<String>,
    /// State, province or county.
    pub ship_region: Option<String>,
    pub ship_postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 country code ("US").
    pub ship_country: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Restrict"
    )]
    User,
    #[sea_orm(has_many = "super::order_items::Entity")]
    OrderItems,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::order_items::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::OrderItems.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
