//! The connected TikTok account and TikTok's sending rules. `tiktok_tokens` becomes the one row of the
//! shop's account (`account = 'shop'`): the business id TikTok returned as `open_id` when the owner
//! connected, when and why TikTok removed the authorization, and the lease of a refresh in progress.
//! `oauth_states` holds the one-time authorization links; `reply_quota` counts the messages sent to a
//! customer since their last message (TikTok allows 10); `unparsed_webhooks` keeps signed events the bot
//! could not read, raw, with the reason.

use crate::columns::*;
use crate::m20261122_000001_create_users::Users;
use crate::m20261122_000009_create_tiktok_tokens::TiktokTokens;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        for column in [
            string_null(Account::BusinessId),
            timestamp_null(Account::DisconnectedAt),
            ColumnDef::new(Account::DisconnectReason).integer().null().take(),
            timestamp_null(Account::RefreshingUntil),
        ] {
            manager.alter_table(Table::alter().table(TiktokTokens::Table).add_column(column).take()).await?;
        }
        let db = manager.get_connection();
        // Rows were keyed by the configured business id (or `default`): the id is kept as the business id
        // and the newest row becomes the shop's account.
        db.execute_unprepared("UPDATE tiktok_tokens SET business_id = account WHERE account <> 'default'").await?;
        db.execute_unprepared(
            "DELETE FROM tiktok_tokens WHERE id <> (SELECT id FROM tiktok_tokens ORDER BY updated_at DESC, id DESC LIMIT 1)",
        )
        .await?;
        db.execute_unprepared("UPDATE tiktok_tokens SET account = 'shop'").await?;
        manager
            .create_table(
                Table::create()
                    .table(ReplyQuota::Table)
                    .col(ColumnDef::new(ReplyQuota::UserId).big_integer().not_null().primary_key())
                    // The customer's message the count belongs to (`users.last_inbound_at` when counted): a
                    // newer message starts the count again.
                    .col(timestamp(ReplyQuota::WindowAt))
                    .col(ColumnDef::new(ReplyQuota::Sent).integer().not_null().default(0))
                    .foreign_key(&mut foreign_key(
                        ReplyQuota::Table,
                        ReplyQuota::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OauthStates::Table)
                    // A one-time authorization link `philia-bot tiktok connect` printed: consumed once by
                    // the callback, within 10 minutes. In the database, so the command and the server
                    // share it without Redis.
                    .col(ColumnDef::new(OauthStates::State).string().not_null().primary_key())
                    .col(ColumnDef::new(OauthStates::Replace).boolean().not_null().default(false))
                    .col(timestamp(OauthStates::ExpiresAt))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UnparsedWebhooks::Table)
                    .col(id(UnparsedWebhooks::Id))
                    .col(timestamp(UnparsedWebhooks::ReceivedAt))
                    .col(string_null(UnparsedWebhooks::Event))
                    .col(ColumnDef::new(UnparsedWebhooks::Reason).text().not_null())
                    .col(ColumnDef::new(UnparsedWebhooks::Body).text().not_null())
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UnparsedWebhooks::Table).take()).await?;
        manager.drop_table(Table::drop().table(ReplyQuota::Table).take()).await?;
        manager.drop_table(Table::drop().table(OauthStates::Table).take()).await?;
        for column in
            [Account::RefreshingUntil, Account::DisconnectReason, Account::DisconnectedAt, Account::BusinessId]
        {
            manager.alter_table(Table::alter().table(TiktokTokens::Table).drop_column(column).take()).await?;
        }
        Ok(())
    }
}

/// The new columns of `tiktok_tokens`.
#[derive(DeriveIden, Clone, Copy)]
enum Account {
    BusinessId,
    DisconnectedAt,
    DisconnectReason,
    /// A replica refreshing the tokens holds this lease until then: one refresh at a time across every
    /// process, so a single-use refresh token is never spent twice.
    RefreshingUntil,
}

#[derive(DeriveIden)]
enum OauthStates {
    Table,
    State,
    Replace,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum ReplyQuota {
    Table,
    UserId,
    WindowAt,
    Sent,
}

#[derive(DeriveIden)]
enum UnparsedWebhooks {
    Table,
    Id,
    ReceivedAt,
    Event,
    Reason,
    Body,
}
