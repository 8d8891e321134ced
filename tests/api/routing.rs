//! The keyword router against the routing table in `tests/data/routing.tsv` (message → intent).

use philia_bot::bot::intent::KeywordRouter;

#[test]
fn the_keyword_router_routes_the_routing_table() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let router = KeywordRouter::load(&root.join("config")).expect("shipped config loads");
    let table = std::fs::read_to_string(root.join("tests/data/routing.tsv")).unwrap();
    let rows: Vec<(&str, &str)> = table
        .lines()
        .filter(|line| !line.starts_with("# ") && !line.trim().is_empty())
        .map(|line| line.split_once('\t').expect("message<TAB>intent"))
        .collect();
    assert!(rows.len() >= 80, "the table has {} rows", rows.len());
    let wrong: Vec<String> = rows
        .iter()
        .filter_map(|(message, expected)| {
            let (intent, _) = router.route(message);
            (intent.name() != *expected).then(|| format!("{message:?}: expected {expected}, got {}", intent.name()))
        })
        .collect();
    assert!(wrong.is_empty(), "{} of {} misrouted:\n{}", wrong.len(), rows.len(), wrong.join("\n"));
}

#[test]
fn entities_are_read_from_the_message() {
    let router = KeywordRouter::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config")).unwrap();
    let (_, entities) = router.route("is JKT-014 still available in a large?");
    assert_eq!(entities.sku.as_deref(), Some("JKT-014"));
    assert_eq!(entities.size.as_deref(), Some("L"));
    let (_, entities) = router.route("where's ph-7k3q2a");
    assert_eq!(entities.order_number.as_deref(), Some("PH-7K3Q2A"));
    let (_, entities) = router.route("show me the second jacket");
    assert_eq!((entities.category.as_deref(), entities.item_position), (Some("jacket"), Some(2)));
}
