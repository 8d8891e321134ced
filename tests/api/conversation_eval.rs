//! `philia-bot eval` on the project's own files, as staff run it after editing `config/`: the routing
//! table must route at least 97% right, the held-out tables their floor, and every scripted conversation must
//! pass.

use std::path::Path;

use crate::cli::{philia, text};

#[test]
fn the_routing_table_routes_at_least_97_percent() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = philia(root).args(["eval", "routing", "eval/routing.tsv", "--min", "97"]).output().unwrap();
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    let first = said.lines().next().unwrap_or_default();
    assert!(first.starts_with("eval/routing.tsv: ") && first.contains("routed right"), "{said}");
}

/// The held-out tables (written without seeing the router) at their floor: a change that routes text
/// nobody tuned for worse fails here. dev to dev4 (tuned on, 2 December 2026; their rows are in
/// `config/examples.tsv`) may lose one row each; dev5 (a development table since 2 December: its misses were
/// fixed through general rules and fresh examples, its rows are not in the examples) is held at its score
/// after that work (326/337); dev6, dev7 and test.tsv (blind: scored by the lead only) may lose one row.
#[test]
fn the_held_out_tables_route_at_least_their_floor() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (table, floor) in [
        ("eval/heldout/dev.tsv", "99.6"),
        ("eval/heldout/dev2.tsv", "99.6"),
        ("eval/heldout/dev3.tsv", "99.6"),
        ("eval/heldout/dev4.tsv", "99.6"),
        ("eval/heldout/dev5.tsv", "96.7"),
        ("eval/heldout/dev6.tsv", "94.2"),
        ("eval/heldout/dev7.tsv", "93.5"),
        ("eval/heldout/test.tsv", "96.5"),
    ] {
        let output = philia(root).args(["eval", "routing", table, "--min", floor]).output().unwrap();
        assert!(output.status.success(), "{table} below {floor}%: {}", text(&output));
    }
}

#[test]
fn every_scripted_conversation_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = philia(root).args(["eval", "conversations", "eval/conversations"]).output().unwrap();
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    let scripts = std::fs::read_dir(root.join("eval/conversations")).unwrap().count() as u32;
    assert!(scripts >= 40, "{scripts} scripts");
    assert!(said.contains(&format!("{scripts}/{scripts} conversations passed")), "{said}");
}

#[test]
fn a_failed_expectation_is_named_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wrong.txt"), "> hi\n< this text is never said\n").unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = philia(root).args(["eval", "conversations"]).arg(dir.path()).output().unwrap();
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("wrong.txt:2: after \"hi\": expected a reply containing \"this text is never said\""),
        "{said}"
    );
    assert!(said.contains("0/1 conversations passed"), "{said}");
}

#[test]
fn a_routing_row_without_a_tab_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("table.tsv");
    std::fs::write(&file, "hi\tgreeting\nno tab here\n").unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = philia(root).args(["eval", "routing"]).arg(&file).output().unwrap();
    assert!(!output.status.success());
    assert!(text(&output).contains("table.tsv:2: expected `message<TAB>intent`"), "{}", text(&output));
}
