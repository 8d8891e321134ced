//! A signed-in browser: the hash of its cookie's token, whose it is, its CSRF token, when it ends, and
//! what the last change said (shown once).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "staff_sessions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub staff_id: i64,
    pub csrf_token: String,
    pub flash: Option<String>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::staff_accounts::Entity",
        from = "Column::StaffId",
        to = "super::staff_accounts::Column::Id",
        on_delete = "Cascade"
    )]
    Staff,
}

impl Related<super::staff_accounts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Staff.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
