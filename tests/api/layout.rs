//! The import graph between the top-level modules of `src/` (issue 12): no cycles (the relations between
//! `store/entities/` are sea-orm's and stay inside `store`), nothing in `shop/` imports `tiktok/` or `bot/`,
//! and nothing in `web/` or `worker/` imports `startup`. Read from the source text, test code included.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arrows the layout forbids: (from, to).
const FORBIDDEN: &[(&str, &str)] = &[("shop", "tiktok"), ("shop", "bot"), ("web", "startup"), ("worker", "startup")];

/// Where one top-level module names another: `src/…` path and line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
}

/// from → to → where.
type Graph = BTreeMap<String, BTreeMap<String, Vec<Site>>>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The source with comments, string and character literals blanked out (newlines kept, so offsets keep
/// their line), so a path in a doc comment or a message is not taken for an import.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && (i == 0 || !is_ident(chars[i - 1]) || chars[i - 1] == 'b')
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(chars[i..j.min(chars.len())].iter().map(|&c| blank(c)));
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let skip = if chars[i] == '\\' { 2 } else { 1 };
                for k in 0..skip {
                    if let Some(&c) = chars.get(i + k) {
                        out.push(blank(c));
                    }
                }
                i += skip;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), else a lifetime or label.
            let end = if next == Some('\\') {
                (i + 2..chars.len()).find(|&k| chars[k] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.extend(chars[i..=end].iter().map(|&c| blank(c)));
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The identifiers of a `{…}` group starting at `open`, top level only (`{a::b, c::{d}, e}` → a, c, e).
fn group_heads(chars: &[char], open: usize) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expecting = true;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '{' => {
                depth += 1;
                i += 1;
            }
            '}' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                expecting = true;
                i += 1;
            }
            c if depth == 1 && expecting && is_ident(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                heads.push(chars[start..i].iter().collect());
                expecting = false;
            }
            _ => i += 1,
        }
    }
    heads
}

/// The path segments right after `at` (which follows a `::`): one identifier, or a group's heads.
fn heads_at(chars: &[char], at: usize) -> Vec<String> {
    let mut i = at;
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    if chars.get(i) == Some(&'{') {
        return group_heads(chars, i);
    }
    let start = i;
    while i < chars.len() && is_ident(chars[i]) {
        i += 1;
    }
    if i == start { Vec::new() } else { vec![chars[start..i].iter().collect()] }
}

/// The module path of a file under `src/` (`web/staff/login.rs` → web, staff, login; `mod.rs` is its folder).
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let file = parts.pop().expect("a file name");
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_owned());
    }
    parts
}

/// Every top-level module another top-level module names (`crate::x`, `$crate::x`, `super::…::x` up to the
/// crate root), with where. `lib.rs` and `main.rs` (the root, which declares them all) are left out, and
/// so are the entities, whose relations name each other inside `store`.
fn import_graph() -> (BTreeSet<String>, Graph) {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let relative: Vec<PathBuf> = files.iter().map(|f| f.strip_prefix(&src).expect("under src").to_path_buf()).collect();
    let modules: BTreeSet<String> =
        relative.iter().map(|r| module_path(r)[0].clone()).filter(|m| m != "lib" && m != "main").collect();
    let mut graph = Graph::new();
    for (file, relative) in files.iter().zip(&relative) {
        let here = module_path(relative);
        if here[0] == "lib" || here[0] == "main" || relative.starts_with("store/entities") {
            continue;
        }
        let source = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let code: Vec<char> = code_only(&source).chars().collect();
        let mut i = 0;
        while i < code.len() {
            let starts_word = i == 0 || !is_ident(code[i - 1]);
            let word = |w: &str| {
                starts_word
                    && code[i..].iter().take(w.len()).copied().eq(w.chars())
                    && code.get(i + w.len()..i + w.len() + 2) == Some(&[':', ':'][..])
            };
            let mut targets = Vec::new();
            let mut end = i + 1;
            if word("crate") {
                end = i + "crate::".len();
                targets = heads_at(&code, end);
            } else if word("super") {
                // super::super::x from the file's module: at the crate root, x is a top-level module.
                let mut base = here.clone();
                let mut j = i;
                while code[j..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
                    base.pop();
                    j += "super::".len();
                }
                end = j;
                if base.is_empty() {
                    targets = heads_at(&code, j);
                }
            }
            for target in targets {
                if modules.contains(&target) && target != here[0] {
                    let line = code[..i].iter().filter(|&&c| c == '\n').count() + 1;
                    let site = Site { file: format!("src/{}", relative.display()), line };
                    let sites = graph.entry(here[0].clone()).or_default().entry(target).or_default();
                    if !sites.contains(&site) {
                        sites.push(site);
                    }
                }
            }
            i = end;
        }
    }
    (modules, graph)
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(modules: &BTreeSet<String>, graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            let graph = self.graph;
            for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let at = self.stack.iter().rposition(|&m| m == node).expect("on the stack");
                let component: Vec<String> = self.stack.drain(at..).map(str::to_owned).collect();
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for module in modules {
        if !walk.index.contains_key(module.as_str()) {
            walk.visit(module);
        }
    }
    walk.found
}

fn sites(graph: &Graph, from: &str, to: &str) -> String {
    let mut out = String::new();
    for site in graph.get(from).and_then(|targets| targets.get(to)).into_iter().flatten() {
        let _ = writeln!(out, "    {}:{}", site.file, site.line);
    }
    out
}

#[test]
fn the_top_level_modules_import_each_other_without_cycles_or_forbidden_arrows() {
    let (modules, graph) = import_graph();
    // The reader works: arrows every build has are found, so an empty graph cannot pass.
    for (from, to) in [("cli", "startup"), ("worker", "store"), ("shop", "store"), ("web", "state")] {
        assert!(
            graph.get(from).is_some_and(|targets| targets.contains_key(to)),
            "the import reader missed {from} → {to}; modules: {modules:?}"
        );
    }
    let mut problems = String::new();
    for component in cycles(&modules, &graph) {
        let _ = writeln!(problems, "cycle between {}:", component.join(", "));
        for from in &component {
            for to in &component {
                let found = sites(&graph, from, to);
                if !found.is_empty() {
                    let _ = write!(problems, "  {from} → {to}\n{found}");
                }
            }
        }
    }
    for (from, to) in FORBIDDEN {
        let found = sites(&graph, from, to);
        if !found.is_empty() {
            let _ = write!(problems, "forbidden: {from}/ imports {to}\n{found}");
        }
    }
    assert!(problems.is_empty(), "the import graph breaks the layout (README, Code layout):\n{problems}");
}

#[test]
fn the_reader_sees_grouped_and_super_paths_and_skips_comments_and_strings() {
    let code: Vec<char> =
        code_only("use crate::{shop::x, bot}; // crate::web\nlet s = \"crate::tiktok\"; 'a'").chars().collect();
    let text: String = code.iter().collect();
    assert!(!text.contains("web") && !text.contains("tiktok"), "{text}");
    assert_eq!(group_heads(&code, text.find('{').expect("a group")), ["shop", "bot"]);
    assert_eq!(module_path(Path::new("web/staff/mod.rs")), ["web", "staff"]);
    assert_eq!(module_path(Path::new("kv.rs")), ["kv"]);
}
