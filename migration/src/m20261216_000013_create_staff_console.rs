//! The staff console's tables: `staff_accounts` (who may sign in, argon2 hashes), `staff_sessions` (one
//! row per signed-in browser, so removing an account or resetting its password signs it out everywhere)
//! and `staff_audit` (every change made in the console, with who made it).

use crate::columns::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StaffAccounts::Table)
                    .col(id(StaffAccounts::Id))
                    .col(string(StaffAccounts::Name).unique_key().take())
                    .col(string(StaffAccounts::PasswordHash))
                    .col(timestamp(StaffAccounts::CreatedAt))
                    .col(timestamp(StaffAccounts::PasswordChangedAt))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StaffSessions::Table)
                    .col(id(StaffSessions::Id))
                    // The SHA-256 of the token in the cookie: a copy of this table signs nobody in.
                    .col(string(StaffSessions::TokenHash).unique_key().take())
                    .col(reference(StaffSessions::StaffId))
                    .col(string(StaffSessions::CsrfToken))
                    // What the last change said, shown once on the next page.
                    .col(text_null(StaffSessions::Flash))
                    .col(timestamp(StaffSessions::CreatedAt))
                    .col(timestamp(StaffSessions::ExpiresAt))
                    .foreign_key(&mut foreign_key(
                        StaffSessions::Table,
                        StaffSessions::StaffId,
                        StaffAccounts::Table,
                        StaffAccounts::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StaffAudit::Table)
                    .col(id(StaffAudit::Id))
                    // The name, not a reference: the log outlives a removed account.
                    .col(string(StaffAudit::StaffName))
                    .col(string(StaffAudit::Action))
                    .col(string(StaffAudit::Subject))
                    .col(text_null(StaffAudit::Detail))
                    .col(timestamp(StaffAudit::CreatedAt))
                    .take(),
            )
            .await?;
        manager.create_index(index("ix_staff_audit_created_at", StaffAudit::Table, &[StaffAudit::CreatedAt])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(StaffAudit::Table).take()).await?;
        manager.drop_table(Table::drop().table(StaffSessions::Table).take()).await?;
        manager.drop_table(Table::drop().table(StaffAccounts::Table).take()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum StaffAccounts {
    Table,
    Id,
    Name,
    PasswordHash,
    CreatedAt,
    PasswordChangedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum StaffSessions {
    Table,
    Id,
    TokenHash,
    StaffId,
    CsrfToken,
    Flash,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum StaffAudit {
    Table,
    Id,
    StaffName,
    Action,
    Subject,
    Detail,
    CreatedAt,
}
