//! The order lifecycle a real shop runs, through the real path: paid, shipped (unpaid only on purpose),
//! tracking corrected, delivered, returned (pieces back on sale only when staff say so), unpaid orders
//! reminded and expired with the waitlist told; a piece in an unpaid order is reserved to others; staff
//! ending a hold tell its holder; and every amount the FAQ states is what the customer's order charges.

use chrono::{Duration, Utc};
use philia_bot::bot::staff::Notice;
use philia_bot::shop::orders::{Address, Move, StatusError};
use philia_bot::store::entities::items::{self, ItemStatus};
use philia_bot::store::entities::messages::{self, Role};
use philia_bot::store::entities::orders::{self, OrderStatus};
use philia_bot::store::entities::{conversations, users};
use philia_bot::worker::sweeper;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::conversation::{say, user_id};
use crate::helpers::{TestApp, TestDatabase, spawn_app, test_settings};
use crate::on_both_databases;
use crate::shop::open_staff;

on_both_databases!(
    an_order_is_paid_shipped_corrected_delivered_and_returned_with_the_customer_told,
    an_unpaid_order_is_reminded_once_then_expires_and_its_pieces_go_to_the_waitlist,
    a_piece_in_an_unpaid_order_is_reserved_to_others_who_hear_when_it_is_cancelled,
    staff_taking_a_held_piece_off_sale_tell_the_customer_who_held_it,
    every_amount_the_faq_states_is_what_the_customers_order_charges,
);

async fn stock(app: &TestApp, sku: &str, title: &str, price_minor: i64) -> items::Model {
    let now = Utc::now();
    items::ActiveModel {
        sku: Set(sku.into()),
        title: Set(title.into()),
        category: Set("jacket".into()),
        tag_size: Set(Some("L".into())),
        measurements: Set(serde_json::json!({"pit_to_pit": 58})),
        condition: Set("great".into()),
        price_minor: Set(price_minor),
        currency: Set("USD".into()),
        status: Set(ItemStatus::Available),
        dropped_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap()
}

async fn item_status(app: &TestApp, sku: &str) -> ItemStatus {
    items::Entity::find().filter(items::Column::Sku.eq(sku)).one(&app.state.db).await.unwrap().unwrap().status
}

/// The texts the shop sent `user` on its own, oldest first.
async fn notices(app: &TestApp, user: &str) -> Vec<String> {
    let conversation = conversations::Entity::find()
        .filter(conversations::Column::UserId.eq(user_id(app, user).await))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    messages::Entity::find()
        .filter(messages::Column::ConversationId.eq(conversation.id))
        .filter(messages::Column::Role.eq(Role::System))
        .filter(messages::Column::Text.is_not_null())
        .order_by_asc(messages::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.text)
        .collect()
}

/// `user` holds `sku` and checks out; returns the order.
async fn order_of(app: &TestApp, user: &str, sku: &str) -> orders::Model {
    assert!(say(app, user, &format!("I'll take {sku}")).await.contains("It's yours!"));
    assert!(say(app, user, "checkout").await.contains("is in 🎉"));
    orders::Entity::find()
        .filter(orders::Column::UserId.eq(user_id(app, user).await))
        .order_by_desc(orders::Column::Id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
}

async fn an_order_is_paid_shipped_corrected_delivered_and_returned_with_the_customer_told(db: TestDatabase) {
    let app = spawn_app(db).await;
    stock(&app, "JKT-010", "Barbour wax jacket", 12_000).await;
    let order = order_of(&app, "kim", "JKT-010").await;
    let number = order.order_number.as_str();
    let staff = open_staff(test_settings(&app._database)).await;
    let usps = Some(("USPS", "9400 1111"));

    let unpaid = staff.set_order_status(number, Move { shipping: usps, ..Move::to(OrderStatus::Shipped) }).await;
    assert!(matches!(unpaid, Err(StatusError::Unpaid(_))), "shipping unpaid needs saying so: {unpaid:?}");
    let address = Address {
        name: "Kim Lee".into(),
        line1: "12 Orchard St".into(),
        city: "New York".into(),
        region: Some("NY".into()),
        postal_code: "10002".into(),
        country: "us".into(),
        ..Default::default()
    };
    let view = staff.set_address(number, &address).await.unwrap();
    assert_eq!((view.order.ship_name.as_deref(), view.order.ship_country.as_deref()), (Some("Kim Lee"), Some("US")));

    staff.set_order_status(number, Move::to(OrderStatus::Paid)).await.unwrap();
    staff
        .set_order_status(number, Move { shipping: Some(("USPS", "9400 0000")), ..Move::to(OrderStatus::Shipped) })
        .await
        .unwrap();
    let too_late = staff.set_address(number, &address).await.unwrap_err();
    assert_eq!(too_late.to_string(), format!("order {number} is shipped: its address can change only until it ships"));
    let corrected = staff.set_tracking(number, "USPS", "9400 1111").await.unwrap();
    assert_eq!(corrected.moved.order.tracking_number.as_deref(), Some("9400 1111"));
    staff.set_order_status(number, Move::to(OrderStatus::Delivered)).await.unwrap();
    assert_eq!(
        say(&app, "kim", "where is my order").await.lines().next().unwrap(),
        format!("Order {number} ($120) is delivered.")
    );
    let returned = staff.set_order_status(number, Move::to(OrderStatus::Returned)).await.unwrap();
    assert!(returned.moved.freed.is_empty());
    assert_eq!(item_status(&app, "JKT-010").await, ItemStatus::Sold, "a return stays off sale unless staff say so");
    // Off sale, but no order claims it any more: staff may relist it by hand.
    let relisted = staff.set_item_status("JKT-010", ItemStatus::Available).await.unwrap();
    assert_eq!(relisted.item.status, ItemStatus::Available);

    let told = notices(&app, "kim").await;
    let expected = [
        format!("Payment received for order {number}"),
        format!("Order {number} is on its way with USPS 🚚 Tracking: 9400 0000"),
        format!("Update on order {number}: its tracking is USPS 9400 1111"),
        format!("Order {number} was delivered 📦 Enjoy! If anything isn't as described, message us within 3 days"),
        format!("We've received the return of order {number}"),
    ];
    assert_eq!(told.len(), expected.len(), "{told:#?}");
    for (text, start) in told.iter().zip(expected) {
        assert!(text.starts_with(&start), "{text:?} should start with {start:?}");
    }
    app.stop().await.unwrap();
}

async fn an_unpaid_order_is_reminded_once_then_expires_and_its_pieces_go_to_the_waitlist(db: TestDatabase) {
    let app = spawn_app(db).await;
    stock(&app, "JKT-020", "Carhartt chore coat", 9_000).await;
    let order = order_of(&app, "kim", "JKT-020").await;
    assert!(say(&app, "lee", "I'll take JKT-020").await.contains("reserved in someone's order"), "lee waits");
    let shop = &app.state.settings.shop;
    let (remind, expire) = (shop.payment_reminder_hours as i64, shop.payment_expiry_hours as i64);
    // Kim and lee keep writing, so the shop may still message them when the order expires.
    let keep_window_open = |hours: i64| {
        let db = app.state.db.clone();
        async move {
            users::Entity::update_many()
                .col_expr(
                    users::Column::LastInboundAt,
                    sea_orm::sea_query::Expr::value(Utc::now() + Duration::hours(hours)),
                )
                .exec(&db)
                .await
                .unwrap();
        }
    };
    let early = sweeper::sweep(&app.state, Utc::now() + Duration::hours(remind) - Duration::minutes(5)).await.unwrap();
    assert_eq!(early.reminded, 0);
    let due = sweeper::sweep(&app.state, Utc::now() + Duration::hours(remind) + Duration::minutes(1)).await.unwrap();
    assert_eq!(due.reminded, 1);
    let again = sweeper::sweep(&app.state, Utc::now() + Duration::hours(remind) + Duration::minutes(2)).await.unwrap();
    assert_eq!(again.reminded, 0, "reminded once");
    let reminder = notices(&app, "kim").await.pop().unwrap();
    assert!(
        reminder.starts_with(&format!("Just a reminder 💛 Order {} ($98) is waiting for payment.", order.order_number))
    );
    assert!(
        reminder.contains(&format!("put {} in the note", order.order_number)) && reminder.contains("after 72 hours")
    );

    keep_window_open(expire - 1).await;
    let expired =
        sweeper::sweep(&app.state, Utc::now() + Duration::hours(expire) + Duration::minutes(1)).await.unwrap();
    assert_eq!((expired.expired, expired.reminded), (1, 0));
    let cancelled = orders::Entity::find_by_id(order.id).one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(item_status(&app, "JKT-020").await, ItemStatus::Available);
    assert!(
        notices(&app, "kim")
            .await
            .pop()
            .unwrap()
            .starts_with(&format!("Order {} wasn't paid in time", order.order_number))
    );
    assert!(
        notices(&app, "lee")
            .await
            .pop()
            .unwrap()
            .contains("Carhartt chore coat ($90) you asked about is available again")
    );
    app.stop().await.unwrap();
}

async fn a_piece_in_an_unpaid_order_is_reserved_to_others_who_hear_when_it_is_cancelled(db: TestDatabase) {
    let app = spawn_app(db).await;
    stock(&app, "JKT-030", "Levi's trucker jacket", 7_000).await;
    let order = order_of(&app, "kim", "JKT-030").await;
    let asked = say(&app, "lee", "is JKT-030 still available?").await;
    assert!(asked.starts_with("Levi's trucker jacket is reserved in someone's order that isn't paid yet"), "{asked}");
    let staff = open_staff(test_settings(&app._database)).await;
    let cancelled = staff.set_order_status(&order.order_number, Move::to(OrderStatus::Cancelled)).await.unwrap();
    let about: Vec<(&str, &Notice)> = cancelled.notified.iter().map(|n| (n.customer.handle(), &n.about)).collect();
    assert_eq!(about, [("kim", &Notice::Order), ("lee", &Notice::Waitlist { sku: "JKT-030".into() })]);
    assert!(cancelled.notified.iter().all(|n| !n.messages.is_empty()), "both could be told");
    assert_eq!(item_status(&app, "JKT-030").await, ItemStatus::Available);
    assert!(say(&app, "lee", "I'll take it").await.contains("It's yours!"), "lee's 'I'll take it' means that piece");
    // A paid order's piece is simply sold to everyone else.
    stock(&app, "JKT-031", "Patagonia fleece", 6_000).await;
    let paid = order_of(&app, "ann", "JKT-031").await;
    staff.set_order_status(&paid.order_number, Move::to(OrderStatus::Paid)).await.unwrap();
    assert!(say(&app, "max", "is JKT-031 available?").await.starts_with("Sorry, Patagonia fleece is sold 💔"));
    app.stop().await.unwrap();
}

async fn staff_taking_a_held_piece_off_sale_tell_the_customer_who_held_it(db: TestDatabase) {
    let app = spawn_app(db).await;
    stock(&app, "JKT-040", "North Face Nuptse", 15_000).await;
    assert!(say(&app, "kim", "I'll take JKT-040").await.contains("It's yours!"));
    let staff = open_staff(test_settings(&app._database)).await;
    let held = staff.set_item_status("JKT-040", ItemStatus::Available).await.unwrap_err();
    assert!(held.to_string().starts_with("JKT-040 is on hold for @kim until"), "{held}");
    let off = staff.set_item_status("JKT-040", ItemStatus::Sold).await.unwrap();
    assert_eq!(off.notified.len(), 1);
    assert_eq!(
        (off.notified[0].customer.handle(), &off.notified[0].about),
        ("kim", &Notice::HoldEnded { sku: "JKT-040".into() })
    );
    assert_eq!(
        notices(&app, "kim").await,
        ["Sorry! North Face Nuptse is no longer available, so your hold on it has ended 💔 Reply 2 to see what's new."]
    );
    assert!(say(&app, "kim", "checkout").await.contains("You don't have anything on hold"));
    app.stop().await.unwrap();
}

/// Every "$…" amount in a text, in minor units.
fn amounts(text: &str) -> Vec<i64> {
    text.match_indices('$')
        .filter_map(|(at, _)| {
            let digits: String = text[at + 1..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let digits = digits.trim_end_matches('.');
            let (whole, cents) = digits.split_once('.').unwrap_or((digits, "0"));
            Some(whole.parse::<i64>().ok()? * 100 + format!("{cents:0<2}").parse::<i64>().ok()?)
        })
        .collect()
}

async fn every_amount_the_faq_states_is_what_the_customers_order_charges(db: TestDatabase) {
    let app = spawn_app(db).await;
    stock(&app, "TEE-050", "Harley tee", 4_500).await;
    stock(&app, "JKT-050", "Arc'teryx shell", 18_000).await;
    let shop = app.state.settings.shop.clone();
    let faq = philia_bot::bot::BotFiles::load(&app.state.settings.config_dir).unwrap().router;
    let topics: Vec<String> = faq.faq_answers().map(|(topic, _)| topic.to_owned()).collect();
    assert!(topics.len() >= 5, "{topics:?}");
    let mut answers = Vec::new();
    for topic in &topics {
        // Each topic asked as a customer would, by its first keyword.
        let (_, written) = faq.faq_answers().find(|(t, _)| t == topic).unwrap();
        let keyword = philia_bot::bot::intent::KeywordRouter::load(&app.state.settings.config_dir)
            .unwrap()
            .faq_keywords(topic)
            .first()
            .cloned()
            .unwrap();
        let answer = say(&app, "kim", &format!("{keyword}?")).await;
        assert!(!answer.contains('{'), "{topic}: every placeholder filled: {answer}");
        assert_eq!(written.contains("{shipping}"), answer.contains(&philia_bot::shop::price(shop.shipping_minor, "$")));
        answers.push((topic.clone(), answer));
    }
    let said = |topic: &str| answers.iter().find(|(t, _)| t == topic).map(|(_, a)| a.clone()).unwrap();
    let shipping_answer = said("shipping");
    let [flat, free_over] = amounts(&shipping_answer)[..] else { panic!("two amounts: {shipping_answer}") };

    // A small order pays the flat shipping the FAQ states; a big one ships free, as it states.
    let small = order_of(&app, "kim", "TEE-050").await;
    assert_eq!(small.shipping_minor, flat, "{shipping_answer}");
    assert!(small.subtotal_minor < free_over);
    let big = order_of(&app, "kim", "JKT-050").await;
    assert!(big.subtotal_minor >= free_over);
    assert_eq!(big.shipping_minor, 0, "free over {free_over}: {shipping_answer}");
    // How to pay: the FAQ says what the checkout says, with "your order number" for the number.
    let payment = said("payment");
    let checkout_payment = shop.payment_instructions.replace("{order_number}", "your order number");
    assert!(payment.contains(&checkout_payment), "{payment}");
    // The hours and the returns window come from the settings too.
    assert!(said("hours").contains("Monday–Saturday, 10:00 AM–7:00 PM"), "{}", said("hours"));
    assert!(said("returns").contains(&format!("within {} days", shop.returns_days)));
    app.stop().await.unwrap();
}
