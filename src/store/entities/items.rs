//! A one-of-a-kind item of stock, with tag size and real measurements.

use sea_orm::entity::prelude::*;

/// `available` → `reserved` (a hold) → `sold`; reserved and sold items are unavailable at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)", rename_all = "lowercase")]
pub enum ItemStatus {
    Available,
    Reserved,
    Sold,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "items")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub sku: String,
    pub title: String,
    pub brand: Option<String>,
    pub category: String,
    /// The size on the label.
    pub tag_size: Option<String>,
    /// The size it really fits like, set by staff or computed from the measurements.
    pub fits_like_size: Option<String>,
    /// Real measurements in centimetres, keyed by name (`pit_to_pit`, `length`, `waist`, `inseam`, `insole`…).
    #[sea_orm(column_type = "JsonBinary")]
    pub measurements: Json,
    pub condition: String,
    pub flaws: Option<String>,
    /// Price in minor units (cents): money is never a float.
    pub price_minor: i64,
    pub currency: String,
    pub status: ItemStatus,
    pub image_url: Option<String>,
    pub tiktok_media_id: Option<String>,
    pub dropped_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::reservations::Entity")]
    Reservations,
}

impl Related<super::reservations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Reservations.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
