//! One change made in the staff console: who (by name, so it outlives the account), what, to which
//! order, piece or conversation, and what came of it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "staff_audit")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub staff_name: String,
    pub action: String,
    pub subject: String,
    pub detail: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
