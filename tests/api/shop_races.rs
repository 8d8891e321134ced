//! The shop never sells a piece twice, tried with the races that did it: an import while customers take
//! holds, staff relisting while customers check out, a thousand checkouts after a hold lapsed while the
//! piece went to someone else, fifty customers asking for ten pieces each, and the waitlist's turn.

use chrono::{Duration, Utc};
use philia_bot::shop::holds::{self, HoldOutcome, HoldRules};
use philia_bot::shop::inventory::{Kept, SetStatusError};
use philia_bot::shop::orders::{self, Shipping};
use philia_bot::store::entities::items::{self, ItemStatus};
use philia_bot::store::entities::orders::OrderStatus;
use philia_bot::store::entities::reservations::{self, ReservationStatus};
use philia_bot::store::entities::{order_items, users};
use philia_bot::worker::sweeper;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    TransactionTrait,
};

use crate::conversation::say;
use crate::helpers::{TestApp, TestDatabase, spawn_app, spawn_app_with, test_settings};
use crate::on_both_databases;
use crate::shop::open_staff;

on_both_databases!(
    a_day_old_import_during_holds_keeps_every_sold_and_held_piece_and_says_why,
    relisting_during_checkout_never_puts_an_ordered_piece_back_on_sale,
    a_thousand_checkouts_after_a_lapse_sell_nothing_the_customer_no_longer_holds,
    fifty_customers_asking_for_ten_pieces_each_hold_three_each,
    a_lapsed_holder_waits_while_the_customer_told_from_the_waitlist_has_first_claim,
    a_lapsed_holder_takes_the_piece_back_once_the_waitlists_claim_window_runs_out,
    a_customer_at_the_hold_limit_hears_what_they_hold_and_how_to_free_a_place,
    a_customer_told_once_is_told_again_after_joining_the_waitlist_again,
    the_database_refuses_a_second_live_order_line_for_one_piece,
    thirty_workers_taking_one_customers_quota_at_once_take_exactly_ten,
);

/// An app whose database takes many transactions at once: each race queues far more of them than the
/// pool has connections, and on a loaded machine the last wait longer than the default 5 s. That wait
/// is the queue, not a failure.
async fn racing_app(db: TestDatabase) -> TestApp {
    let mut settings = test_settings(&db);
    settings.database.connect_timeout_secs = 300;
    // SQLite has one writer at a time whatever the pool: with one connection the transactions queue in
    // the pool (waiting up to the timeout above) instead of in SQLite's 5 s busy wait, which a loaded
    // machine overran.
    if db.kind == "sqlite" {
        settings.database.max_connections = 1;
    }
    spawn_app_with(db, settings, philia_bot::role::Role::All).await
}

async fn piece(db: &DatabaseConnection, sku: &str, price_minor: i64) -> items::Model {
    let now = Utc::now();
    items::ActiveModel {
        sku: Set(sku.into()),
        title: Set(format!("Piece {sku}")),
        category: Set("tee".into()),
        tag_size: Set(Some("M".into())),
        measurements: Set(serde_json::json!({"pit_to_pit": 52})),
        condition: Set("great".into()),
        price_minor: Set(price_minor),
        currency: Set("USD".into()),
        status: Set(ItemStatus::Available),
        dropped_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
}

async fn customer(db: &DatabaseConnection, name: &str) -> users::Model {
    let now = Utc::now();
    users::ActiveModel {
        tiktok_user_id: Set(format!("open-{name}")),
        username: Set(Some(name.into())),
        last_inbound_at: Set(Some(now)),
        opted_out: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
}

async fn status_of(db: &DatabaseConnection, sku: &str) -> ItemStatus {
    items::Entity::find().filter(items::Column::Sku.eq(sku)).one(db).await.unwrap().unwrap().status
}

fn rules(app: &TestApp) -> HoldRules {
    HoldRules::of(&app.state.settings.shop)
}

/// Holds `item` for `who` in a transaction of its own.
async fn hold(db: &DatabaseConnection, who: &users::Model, item: &items::Model, rules: &HoldRules) -> HoldOutcome {
    let txn = db.begin().await.unwrap();
    let outcome = holds::reserve(&txn, who, item, Utc::now(), rules).await.unwrap();
    txn.commit().await.unwrap();
    outcome
}

/// Every piece in more than one order that still claims it: must always be empty.
async fn sold_twice(db: &DatabaseConnection) -> Vec<i64> {
    let lines = order_items::Entity::find().filter(order_items::Column::Active.eq(true)).all(db).await.unwrap();
    let mut ids: Vec<i64> = lines.iter().map(|l| l.item_id).collect();
    ids.sort_unstable();
    let mut twice: Vec<i64> = ids.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    twice.dedup();
    twice
}

async fn a_day_old_import_during_holds_keeps_every_sold_and_held_piece_and_says_why(db: TestDatabase) {
    let app = racing_app(db).await;
    let db = &app.state.db;
    let staff = open_staff(test_settings(&app._database)).await;
    let mut pieces = Vec::new();
    for i in 0..50 {
        pieces.push(piece(db, &format!("IMP-{i:02}"), 4_000).await);
    }
    // The staff export this morning: every piece available. Then a customer bought IMP-00.
    let mut file = Vec::new();
    staff.export(&mut file).await.unwrap();
    let buyer = customer(db, "buyer").await;
    hold(db, &buyer, &pieces[0], &rules(&app)).await;
    let txn = db.begin().await.unwrap();
    let order = orders::checkout(&txn, &buyer, None, &Shipping::of(&app.state.settings.shop)).await.unwrap().unwrap();
    txn.commit().await.unwrap();

    // Fifty customers take holds on the other pieces while staff re-import the day-old file, twice.
    let mut customers = Vec::new();
    for i in 1..50 {
        customers.push(customer(db, &format!("holder-{i}")).await);
    }
    let mut racing = tokio::task::JoinSet::new();
    for (who, item) in customers.iter().cloned().zip(pieces[1..].iter().cloned()) {
        let (db, rules) = (db.clone(), rules(&app));
        racing.spawn(async move { matches!(hold(&db, &who, &item, &rules).await, HoldOutcome::Held { .. }) });
    }
    let mut imports = Vec::new();
    for _ in 0..2 {
        imports.push(staff.import(file.as_slice(), false).await.expect("the import succeeds beside the holds"));
    }
    let mut held = 0;
    while let Some(won) = racing.join_next().await {
        held += usize::from(won.unwrap());
    }
    assert_eq!(held, 49, "every customer got their piece");

    assert_eq!(status_of(db, "IMP-00").await, ItemStatus::Sold, "the sold piece stays sold");
    let active = reservations::Entity::find()
        .filter(reservations::Column::Status.eq(ReservationStatus::Active))
        .find_also_related(items::Entity)
        .all(db)
        .await
        .unwrap();
    assert_eq!(active.len(), 49);
    for (hold, item) in &active {
        assert_eq!(item.as_ref().unwrap().status, ItemStatus::Reserved, "hold {} overwritten", hold.id);
    }
    assert!(imports.iter().all(|i| i.report.status_changes.is_empty()), "a day-old file changes no status");
    // Once the holds are in, the same file says per row why each status stays.
    let last = staff.import(file.as_slice(), false).await.unwrap();
    let sold_row = last.report.kept.iter().find(|k| k.sku == "IMP-00").expect("the sold piece is reported");
    assert!(
        matches!(&sold_row.because, Kept::InOrder { order_number, .. } if *order_number == order.order.order_number),
        "{sold_row:?}"
    );
    assert_eq!(sold_row.row, 2, "the row of the file");
    assert_eq!(last.report.kept.len(), 50, "the sold piece and the 49 held ones");
    assert!(last.report.kept.iter().filter(|k| k.sku != "IMP-00").all(|k| matches!(k.because, Kept::Held { .. })));
    assert!(sold_twice(db).await.is_empty());
    app.stop().await.unwrap();
}

async fn relisting_during_checkout_never_puts_an_ordered_piece_back_on_sale(db: TestDatabase) {
    let app = racing_app(db).await;
    let db = &app.state.db;
    let staff = std::sync::Arc::new(open_staff(test_settings(&app._database)).await);
    let shipping = Shipping::of(&app.state.settings.shop);
    let mut pairs = Vec::new();
    for i in 0..20 {
        let item = piece(db, &format!("REL-{i:02}"), 4_000).await;
        let who = customer(db, &format!("buyer-{i}")).await;
        hold(db, &who, &item, &rules(&app)).await;
        pairs.push((who, item));
    }
    // Each buyer checks out while staff relist the same piece.
    let mut racing = tokio::task::JoinSet::new();
    for (who, item) in pairs.iter().cloned() {
        let db = db.clone();
        racing.spawn(async move {
            let txn = db.begin().await.unwrap();
            let order = orders::checkout(&txn, &who, None, &shipping).await.unwrap();
            txn.commit().await.unwrap();
            order.is_some()
        });
        let staff = staff.clone();
        racing.spawn(async move {
            match staff.set_item_status(&item.sku, ItemStatus::Available).await {
                Err(SetStatusError::InOrder { .. } | SetStatusError::Held { .. }) => false,
                other => panic!("{}: relisted a held or ordered piece: {other:?}", item.sku),
            }
        });
    }
    let mut ordered = 0;
    while let Some(done) = racing.join_next().await {
        ordered += usize::from(done.unwrap());
    }
    assert_eq!(ordered, 20, "every buyer's checkout went through");
    // Anyone else asking for the pieces now finds them sold, and can order none of them.
    let late = customer(db, "late").await;
    for (_, item) in &pairs {
        assert_eq!(status_of(db, &item.sku).await, ItemStatus::Sold);
        let outcome = hold(db, &late, item, &rules(&app)).await;
        assert!(matches!(outcome, HoldOutcome::InPendingOrder { .. }), "{outcome:?}");
    }
    assert!(sold_twice(db).await.is_empty());
    app.stop().await.unwrap();
}

async fn a_thousand_checkouts_after_a_lapse_sell_nothing_the_customer_no_longer_holds(db: TestDatabase) {
    let app = racing_app(db).await;
    let db = &app.state.db;
    let jacket = piece(db, "LAP-001", 8_500).await;
    let (first, second) = (customer(db, "first").await, customer(db, "second").await);
    hold(db, &first, &jacket, &rules(&app)).await;
    // The hold lapsed a moment ago; the sweeper has not run yet.
    reservations::Entity::update_many()
        .col_expr(reservations::Column::ExpiresAt, sea_orm::sea_query::Expr::value(Utc::now() - Duration::seconds(1)))
        .exec(db)
        .await
        .unwrap();
    // A thousand late "checkout"s of the first customer (each decided before the lapse), while the
    // sweeper frees the piece and the second customer takes it.
    let shipping = Shipping::of(&app.state.settings.shop);
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..1_000 {
        let (db, who) = (db.clone(), first.clone());
        racing.spawn(async move {
            let txn = db.begin().await.unwrap();
            let order = orders::checkout(&txn, &who, None, &shipping).await.unwrap();
            txn.commit().await.unwrap();
            order.is_some()
        });
    }
    let state = app.state.clone();
    let (taker, item, taking_rules) = (second.clone(), jacket.clone(), rules(&app));
    let taken = tokio::spawn(async move {
        sweeper::sweep(&state, Utc::now()).await.unwrap();
        hold(&state.db, &taker, &item, &taking_rules).await
    });
    let mut orders_made = 0;
    while let Some(done) = racing.join_next().await {
        orders_made += usize::from(done.unwrap());
    }
    let taken = taken.await.unwrap();
    assert_eq!(orders_made, 0, "a lapsed hold is not an order, whatever the turn thought the time was");
    assert!(matches!(taken, HoldOutcome::Held { .. }), "the second customer got the piece: {taken:?}");
    assert_eq!(status_of(db, "LAP-001").await, ItemStatus::Reserved, "the second customer's hold, not sold");
    let active = reservations::Entity::find()
        .filter(reservations::Column::Status.eq(ReservationStatus::Active))
        .all(db)
        .await
        .unwrap();
    assert_eq!(active.iter().map(|h| h.user_id).collect::<Vec<_>>(), [second.id]);
    assert_eq!(order_items::Entity::find().count(db).await.unwrap(), 0);
    app.stop().await.unwrap();
}

async fn fifty_customers_asking_for_ten_pieces_each_hold_three_each(db: TestDatabase) {
    let app = racing_app(db).await;
    let db = &app.state.db;
    let limit = app.state.settings.shop.max_holds_per_customer;
    assert_eq!(limit, 3, "the shipped default");
    let mut customers = Vec::new();
    let mut pieces = Vec::new();
    for c in 0..50 {
        customers.push(customer(db, &format!("drop-{c}")).await);
        for p in 0..10 {
            pieces.push(piece(db, &format!("DRP-{c:02}-{p}"), 3_000).await);
        }
    }
    let mut racing = tokio::task::JoinSet::new();
    for (c, who) in customers.iter().enumerate() {
        for item in &pieces[c * 10..c * 10 + 10] {
            let (db, who, item, rules) = (db.clone(), who.clone(), item.clone(), rules(&app));
            racing.spawn(async move { hold(&db, &who, &item, &rules).await });
        }
    }
    let (mut held, mut refused) = (0, 0);
    while let Some(outcome) = racing.join_next().await {
        match outcome.unwrap() {
            HoldOutcome::Held { .. } => held += 1,
            HoldOutcome::TooManyHolds { held: theirs, .. } => {
                assert_eq!(theirs.len() as u64, limit);
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((held, refused), (150, 350));
    for who in &customers {
        let theirs = holds::holds_of(db, who.id).await.unwrap();
        assert_eq!(theirs.len() as u64, limit, "{}", who.tiktok_user_id);
    }
    app.stop().await.unwrap();
}

async fn a_lapsed_holder_waits_while_the_customer_told_from_the_waitlist_has_first_claim(db: TestDatabase) {
    let app = spawn_app(db).await;
    piece(&app.state.db, "WLF-001", 8_500).await;
    assert!(say(&app, "kim", "I'll take WLF-001").await.contains("It's yours!"));
    assert!(say(&app, "lee", "is WLF-001 available?").await.contains("waitlist"));
    // Kim's hold lapses: lee is told the piece is free.
    let swept = sweeper::sweep(&app.state, Utc::now() + Duration::minutes(31)).await.unwrap();
    assert_eq!((swept.released, swept.told), (1, 1));
    let again = say(&app, "kim", "I'll take WLF-001").await;
    assert!(again.contains("Someone on the waitlist gets first dibs on Piece WLF-001 until"), "{again}");
    assert_eq!(status_of(&app.state.db, "WLF-001").await, ItemStatus::Available, "kept for lee to answer");
    // Lee answers: the piece is theirs.
    assert!(say(&app, "lee", "I'll take it").await.contains("It's yours!"));
    app.stop().await.unwrap();
}

async fn a_lapsed_holder_takes_the_piece_back_once_the_waitlists_claim_window_runs_out(db: TestDatabase) {
    use philia_bot::store::entities::waitlist;
    use sea_orm::sea_query::Expr;
    let app = spawn_app(db).await;
    let db = &app.state.db;
    let item = piece(db, "WLB-001", 8_500).await;
    assert!(say(&app, "kim", "I'll take WLB-001").await.contains("It's yours!"));
    assert!(say(&app, "lee", "is WLB-001 available?").await.contains("waitlist"));
    let swept = sweeper::sweep(&app.state, Utc::now() + Duration::minutes(31)).await.unwrap();
    assert_eq!((swept.released, swept.told), (1, 1), "kim's hold lapsed, lee was told");
    let claim = app.state.settings.shop.waitlist_claim_minutes as i64;
    assert_eq!(claim, 15, "the shipped default");
    let lee = crate::conversation::user_id(&app, "lee").await;
    // Lee was told `minutes_ago` and has not written since.
    let told = |minutes_ago: i64| async move {
        let at = Utc::now() - Duration::minutes(minutes_ago);
        waitlist::Entity::update_many()
            .col_expr(waitlist::Column::NotifiedAt, Expr::value(at))
            .filter(waitlist::Column::ItemId.eq(item.id))
            .filter(waitlist::Column::UserId.eq(lee))
            .exec(db)
            .await
            .unwrap();
        users::Entity::update_many()
            .col_expr(users::Column::LastInboundAt, Expr::value(at - Duration::minutes(5)))
            .filter(users::Column::Id.eq(lee))
            .exec(db)
            .await
            .unwrap();
    };
    told(claim - 1).await;
    let early = say(&app, "kim", "I'll take WLB-001").await;
    assert!(early.contains("Someone on the waitlist gets first dibs on Piece WLB-001 until"), "{early}");
    assert_eq!(status_of(db, "WLB-001").await, ItemStatus::Available, "kept for lee a minute more");
    // The window ran out without an answer from lee: kim may take the piece back.
    told(claim + 1).await;
    let back = say(&app, "kim", "I'll take WLB-001").await;
    assert!(back.contains("It's yours!"), "{back}");
    assert_eq!(status_of(db, "WLB-001").await, ItemStatus::Reserved);
    let active = reservations::Entity::find()
        .filter(reservations::Column::Status.eq(ReservationStatus::Active))
        .all(db)
        .await
        .unwrap();
    let kim = crate::conversation::user_id(&app, "kim").await;
    assert_eq!(active.iter().map(|h| h.user_id).collect::<Vec<_>>(), [kim]);
    assert!(say(&app, "lee", "I'll take WLB-001").await.contains("Someone just put Piece WLB-001 on hold"));
    app.stop().await.unwrap();
}

async fn a_customer_at_the_hold_limit_hears_what_they_hold_and_how_to_free_a_place(db: TestDatabase) {
    let app = spawn_app(db).await;
    let limit = app.state.settings.shop.max_holds_per_customer;
    assert_eq!(limit, 3, "the shipped default");
    for sku in ["LIM-001", "LIM-002", "LIM-003", "LIM-004"] {
        piece(&app.state.db, sku, 3_000).await;
    }
    for sku in ["LIM-001", "LIM-002", "LIM-003"] {
        assert!(say(&app, "kim", &format!("I'll take {sku}")).await.contains("It's yours!"));
    }
    let fourth = say(&app, "kim", "I'll take LIM-004").await;
    let replies = philia_bot::bot::Replies::load(&app.state.settings.config_dir).unwrap();
    let expected = replies
        .templates
        .hold_limit
        .replace("{count}", "3")
        .replace("{held}", "Piece LIM-001, Piece LIM-002, Piece LIM-003")
        .replace("{title}", "Piece LIM-004");
    assert_eq!(fourth, expected, "the hold_limit reply, with what kim holds, soonest to lapse first");
    assert!(fourth.contains("3 pieces on hold (Piece LIM-001, Piece LIM-002, Piece LIM-003)"), "{fourth}");
    assert_eq!(status_of(&app.state.db, "LIM-004").await, ItemStatus::Available, "not held for kim");
    assert!(say(&app, "lee", "I'll take LIM-004").await.contains("It's yours!"), "another customer can take it");
    app.stop().await.unwrap();
}

async fn a_customer_told_once_is_told_again_after_joining_the_waitlist_again(db: TestDatabase) {
    let app = spawn_app(db).await;
    piece(&app.state.db, "WLA-001", 8_500).await;
    say(&app, "kim", "I'll take WLA-001").await;
    say(&app, "lee", "is WLA-001 available?").await;
    sweeper::sweep(&app.state, Utc::now() + Duration::minutes(31)).await.unwrap();
    // Lee was told, but ann was quicker; lee asks again and waits again.
    say(&app, "ann", "I'll take WLA-001").await;
    assert!(say(&app, "lee", "is WLA-001 available?").await.contains("waitlist"));
    let swept = sweeper::sweep(&app.state, Utc::now() + Duration::minutes(62)).await.unwrap();
    assert_eq!((swept.released, swept.told), (1, 1), "lee is told the second time too");
    app.stop().await.unwrap();
}

async fn the_database_refuses_a_second_live_order_line_for_one_piece(db: TestDatabase) {
    let app = spawn_app(db).await;
    let db = &app.state.db;
    let item = piece(db, "ONE-001", 4_000).await;
    let (a, b) = (customer(db, "a").await, customer(db, "b").await);
    let now = Utc::now();
    let order = |who: &users::Model, number: &str| philia_bot::store::entities::orders::ActiveModel {
        order_number: Set(number.into()),
        user_id: Set(who.id),
        status: Set(OrderStatus::Pending),
        currency: Set("USD".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let first = order(&a, "PH-AAAAAA").insert(db).await.unwrap();
    let second = order(&b, "PH-BBBBBB").insert(db).await.unwrap();
    let line = |order_id: i64, active: bool| order_items::ActiveModel {
        order_id: Set(order_id),
        item_id: Set(item.id),
        price_minor: Set(4_000),
        created_at: Set(now),
        active: Set(active),
        ..Default::default()
    };
    line(first.id, true).insert(db).await.unwrap();
    assert!(line(second.id, true).insert(db).await.is_err(), "a second live order for the piece is refused");
    assert!(line(second.id, false).insert(db).await.is_ok(), "a cancelled order's line does not claim it");
    app.stop().await.unwrap();
}

/// TikTok takes 10 messages after a customer's message. Workers sending to one customer at once each take
/// one from the quota before their send: together they never take more than 10.
async fn thirty_workers_taking_one_customers_quota_at_once_take_exactly_ten(db: TestDatabase) {
    use philia_bot::shop::window;
    let app = racing_app(db).await;
    let who = customer(&app.state.db, "quinn").await;
    let now = Utc::now();
    let takers: Vec<_> = (0..30)
        .map(|_| {
            let db = app.state.db.clone();
            tokio::spawn(async move { window::take_quota(&db, who.id, now).await.unwrap() })
        })
        .collect();
    let mut taken = 0;
    for taker in takers {
        taken += usize::from(taker.await.unwrap());
    }
    assert_eq!(taken, 10, "exactly the quota, whoever took it");
    assert_eq!(window::quota_left(&app.state.db, who.id, now).await.unwrap(), 0);
    app.stop().await.unwrap();
}
