//! The schema enforces what the shop depends on, on SQLite and PostgreSQL alike.

use chrono::{Duration, Utc};
use philia_bot::store::entities::{conversations, items, messages, orders, reservations, users};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, Database, DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::json;

use crate::helpers::TestDatabase;
use crate::on_both_databases;

on_both_databases!(
    an_item_can_have_only_one_active_hold,
    tiktok_message_ids_are_unique_but_may_be_absent,
    foreign_keys_reject_a_conversation_of_an_unknown_user,
    an_order_keeps_its_shipping_address_and_the_columns_roll_back,
);

async fn migrated(db: &TestDatabase) -> DatabaseConnection {
    let conn = Database::connect(&db.url).await.expect("connect");
    philia_bot::store::migrate_up(&conn).await.expect("migrate");
    conn
}

async fn user(conn: &DatabaseConnection, tiktok_id: &str) -> users::Model {
    let now = Utc::now();
    users::ActiveModel {
        tiktok_user_id: Set(tiktok_id.into()),
        opted_out: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
    .expect("insert user")
}

async fn item(conn: &DatabaseConnection, sku: &str) -> items::Model {
    let now = Utc::now();
    items::ActiveModel {
        sku: Set(sku.into()),
        title: Set("Carhartt Detroit jacket".into()),
        category: Set("jackets".into()),
        tag_size: Set(Some("L".into())),
        measurements: Set(json!({"pit_to_pit": 60.0, "length": 70.0})),
        condition: Set("good".into()),
        price_minor: Set(8_500),
        currency: Set("USD".into()),
        status: Set(items::ItemStatus::Available),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
    .expect("insert item")
}

fn conversation(user_id: i64, tiktok_id: &str) -> conversations::ActiveModel {
    let now = Utc::now();
    conversations::ActiveModel {
        tiktok_conversation_id: Set(tiktok_id.into()),
        user_id: Set(user_id),
        state: Set(json!({"kind": "idle"})),
        handoff_active: Set(false),
        metadata: Set(json!({})),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

fn hold(item: i64, user: i64, status: reservations::ReservationStatus) -> reservations::ActiveModel {
    let now = Utc::now();
    reservations::ActiveModel {
        item_id: Set(item),
        user_id: Set(user),
        expires_at: Set(now + Duration::minutes(30)),
        status: Set(status),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

async fn an_item_can_have_only_one_active_hold(db: TestDatabase) {
    use reservations::ReservationStatus::{Active, Released};
    let conn = migrated(&db).await;
    let (alice, bob) = (user(&conn, "alice").await, user(&conn, "bob").await);
    let jacket = item(&conn, "PH-0001").await;
    hold(jacket.id, alice.id, Active).insert(&conn).await.expect("first hold");
    let second = hold(jacket.id, bob.id, Active).insert(&conn).await;
    assert!(second.is_err(), "a second active hold on one item must be refused by the database");
    // Released holds do not count: the history of an item can hold many of them.
    hold(jacket.id, bob.id, Released).insert(&conn).await.expect("released hold");
    hold(jacket.id, alice.id, Released).insert(&conn).await.expect("another released hold");
    assert_eq!(reservations::Entity::find().count(&conn).await.unwrap(), 3);
}

async fn tiktok_message_ids_are_unique_but_may_be_absent(db: TestDatabase) {
    let conn = migrated(&db).await;
    let alice = user(&conn, "alice").await;
    let now = Utc::now();
    let conversation = conversation(alice.id, "Cgw4LjE+Y29udjE=").insert(&conn).await.expect("insert conversation");
    let message = |tiktok_id: Option<&str>| messages::ActiveModel {
        conversation_id: Set(conversation.id),
        direction: Set(messages::Direction::In),
        role: Set(messages::Role::User),
        tiktok_message_id: Set(tiktok_id.map(str::to_owned)),
        message_type: Set("text".into()),
        text: Set(Some("is the carhartt still available?".into())),
        metadata: Set(json!({})),
        created_at: Set(now),
        ..Default::default()
    };
    message(Some("7447361234567890123")).insert(&conn).await.expect("first");
    assert!(message(Some("7447361234567890123")).insert(&conn).await.is_err(), "a redelivered id is refused");
    message(None).insert(&conn).await.expect("no id");
    message(None).insert(&conn).await.expect("another without id");
    let stored = messages::Entity::find().all(&conn).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].tiktok_message_id.as_deref(), Some("7447361234567890123"), "19-digit ids stay exact");
}

async fn foreign_keys_reject_a_conversation_of_an_unknown_user(db: TestDatabase) {
    let conn = migrated(&db).await;
    let orphan = conversation(999_999, "nobody").insert(&conn).await;
    assert!(orphan.is_err(), "foreign keys are enforced ({})", db.kind);
}

async fn an_order_keeps_its_shipping_address_and_the_columns_roll_back(db: TestDatabase) {
    let conn = migrated(&db).await;
    let customer = user(&conn, "addressed").await;
    let now = Utc::now();
    let order = orders::ActiveModel {
        order_number: Set("PH-ADDR22".into()),
        user_id: Set(customer.id),
        status: Set(orders::OrderStatus::Pending),
        subtotal_minor: Set(8_500),
        shipping_minor: Set(800),
        total_minor: Set(9_300),
        currency: Set("USD".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ship_name: Set(Some("Kim Lee".into())),
        ship_line1: Set(Some("12 Orchard St".into())),
        ship_line2: Set(Some("Apt 4B".into())),
        ship_city: Set(Some("New York".into())),
        ship_region: Set(Some("NY".into())),
        ship_postal_code: Set(Some("10002".into())),
        ship_country: Set(Some("US".into())),
        ..Default::default()
    }
    .insert(&conn)
    .await
    .expect("insert order");
    let stored = orders::Entity::find_by_id(order.id).one(&conn).await.unwrap().unwrap();
    assert_eq!(
        (stored.ship_name.as_deref(), stored.ship_postal_code.as_deref(), stored.ship_country.as_deref()),
        (Some("Kim Lee"), Some("10002"), Some("US"))
    );
    // The address migration (and the ones after it) roll back and apply again with the order (and its
    // other columns) intact.
    let status = philia_bot::store::migration_status(&conn).await.unwrap();
    let since_address =
        status.iter().rev().take_while(|(name, _)| !name.contains("add_order_shipping_address")).count();
    philia_bot::store::migrate_down(&conn, Some(since_address as u32 + 1))
        .await
        .expect("roll the address columns back");
    philia_bot::store::migrate_up(&conn).await.expect("apply them again");
    let again = orders::Entity::find_by_id(order.id).one(&conn).await.unwrap().unwrap();
    assert_eq!((again.total_minor, again.ship_name), (9_300, None), "{}", db.kind);
}
