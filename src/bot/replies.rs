//! The customer-facing texts, read from `config/replies.toml` (compiled in as the fallback, so the bot
//! speaks even without a config folder).

use std::path::Path;

use serde::Deserialize;

use crate::config::Problem;

pub const REPLIES_FILE: &str = "replies.toml";
const BUILT_IN: &str = include_str!("../../config/replies.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replies {
    pub menu: MenuTexts,
    pub templates: Templates,
}

/// Declares the reply templates and the placeholders each may use, in one place, so loading, checking
/// and rendering cannot disagree.
macro_rules! templates {
    ($($name:ident: [$($placeholder:literal),*]),+ $(,)?) => {
        /// The replies to each kind of question; `{placeholders}` are filled with facts.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Templates {
            $(pub $name: String,)+
        }

        impl Templates {
            /// Each template's name, text and allowed placeholders.
            fn each(&self) -> Vec<(&'static str, &str, &'static [&'static str])> {
                vec![$((stringify!($name), self.$name.as_str(), &[$($placeholder),*])),+]
            }
        }
    };
}

templates! {
    unknown: [],
    thanks: [],
    opt_out: [],
    handoff_open: ["closes"],
    handoff_closed: ["opens"],
    order_ask: [],
    order_status: ["order_number", "status", "total"],
    order_shipped: ["order_number", "carrier", "tracking"],
    order_not_found: ["order_number"],
    no_orders: [],
    drops_intro: ["count"],
    drops_item: ["position", "title", "price", "size"],
    drops_more: [],
    drops_none: [],
    drops_end: [],
    item_available: ["title", "price", "size", "fit", "measurements", "condition", "flaws"],
    item_on_hold: ["title"],
    item_unavailable: ["title", "status"],
    item_not_found: [],
    search_none: ["category", "size"],
    item_ask: [],
    flaws_listed: ["flaws"],
    no_flaws: [],
    no_measurements: [],
    sizing: ["title", "size", "measurements"],
    fit_true: ["title", "size", "measured"],
    fit_differs: ["title", "size", "measured", "fits_like"],
    fit_untagged: ["title", "measured", "fits_like"],
    fit_staff: ["title", "size", "fits_like"],
    fit_note: ["measured", "fits_like"],
    fit_missing: ["title", "missing"],
    fit_missing_length: ["missing"],
    fit_yes: ["customer_size", "fits_like"],
    fit_snug: ["customer_size", "fits_like"],
    fit_roomy: ["customer_size", "fits_like"],
    fit_too_small: ["customer_size", "fits_like"],
    fit_too_big: ["customer_size", "fits_like"],
    hold_confirmed: ["title", "price", "until"],
    hold_already: ["title", "until"],
    hold_taken: ["title"],
    cancel_done: ["title"],
    cancel_none: [],
    checkout_done: ["order_number", "items", "total", "payment"],
    checkout_nothing: [],
    waitlist_free: ["title", "price"],
    order_paid_notice: ["order_number"],
    order_shipped_notice: ["order_number", "carrier", "tracking"],
    order_cancelled_notice: ["order_number"],
    menu_hint: [],
}

/// Fills `{name}` placeholders of `template` with `values`. A placeholder filled with nothing leaves no
/// double space behind.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = template.to_owned();
    for (name, value) in values {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text.split('\n')
        .map(|line| line.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `{placeholders}` a template uses.
fn placeholders(template: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start + 1..].find('}') else { break };
        found.push(&rest[start + 1..start + 1 + len]);
        rest = &rest[start + 1 + len + 1..];
    }
    found
}

/// The numbered menu.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuTexts {
    pub intro: String,
    pub options: Vec<String>,
    pub outro: String,
    /// A picture sent after the menu (a JPG or PNG URL), e.g. the shop's banner. Optional.
    #[serde(default)]
    pub image_url: Option<String>,
}

impl Replies {
    /// Reads `replies.toml` from `config_dir`, or the built-in texts when the file is absent.
    pub fn load(config_dir: &Path) -> Result<Self, Vec<Problem>> {
        let path = config_dir.join(REPLIES_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::parse(BUILT_IN, "built-in replies.toml"),
            Err(e) => Err(vec![Problem::new(path.display().to_string(), "(file)", format!("cannot read: {e}"))]),
        }
    }

    /// Parses and validates the texts; problems name `source` and the field.
    pub fn parse(text: &str, source: &str) -> Result<Self, Vec<Problem>> {
        let replies: Replies = toml::from_str(text).map_err(|e| {
            let field = e.span().map(|span| field_at(text, span.start)).unwrap_or_else(|| "(syntax)".into());
            vec![Problem::new(source, field, e.message().to_owned())]
        })?;
        let mut problems = Vec::new();
        if replies.menu.options.is_empty() {
            problems.push(Problem::new(source, "menu.options", "must list at least one option"));
        }
        if replies.menu.options.len() > 9 {
            problems.push(Problem::new(source, "menu.options", "at most 9 options (customers answer with one digit)"));
        }
        for (i, option) in replies.menu.options.iter().enumerate() {
            if option.trim().is_empty() {
                problems.push(Problem::new(source, format!("menu.options[{i}]"), "must not be empty"));
            }
        }
        for (name, text, allowed) in replies.templates.each() {
            if text.trim().is_empty() {
                problems.push(Problem::new(source, format!("templates.{name}"), "must not be empty"));
            }
            for placeholder in placeholders(text) {
                if !allowed.contains(&placeholder) {
                    let known = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
                    problems.push(Problem::new(
                        source,
                        format!("templates.{name}"),
                        format!("unknown placeholder {{{placeholder}}} (this template knows: {known})"),
                    ));
                }
            }
        }
        if let Some(url) = &replies.menu.image_url
            && url::Url::parse(url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true)
        {
            problems.push(Problem::new(source, "menu.image_url", format!("{url:?} is not an http(s) URL")));
        }
        if problems.is_empty() { Ok(replies) } else { Err(problems) }
    }

    /// The numbered menu as one message.
    pub fn menu(&self) -> String {
        let mut text = self.menu.intro.trim_end().to_owned();
        for (i, option) in self.menu.options.iter().enumerate() {
            text.push_str(&format!("\n{}. {}", i + 1, option.trim()));
        }
        if !self.menu.outro.trim().is_empty() {
            text.push('\n');
            text.push_str(self.menu.outro.trim());
        }
        text
    }
}

/// The dotted key path of the TOML table/key around byte `offset`, for error messages.
fn field_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let table = before
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']')))
        .map(|t| t.trim().to_owned());
    let line = text[before.rfind('\n').map_or(0, |i| i + 1)..].lines().next().unwrap_or("");
    let key = line.split('=').next().map(str::trim).filter(|k| !k.is_empty() && !k.starts_with('['));
    match (table, key) {
        (Some(table), Some(key)) => format!("{table}.{key}"),
        (Some(table), None) => table,
        (None, Some(key)) => key.to_owned(),
        (None, None) => "(root)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_texts_render_a_numbered_menu() {
        let replies = Replies::parse(BUILT_IN, "replies.toml").unwrap();
        let menu = replies.menu();
        assert!(menu.contains("\n1. Order status\n2. New drops\n3. Talk to a human\n"), "{menu}");
    }

    #[test]
    fn problems_name_the_field() {
        let with_menu = |menu: &str| {
            BUILT_IN.replace(&BUILT_IN[BUILT_IN.find("[menu]").unwrap()..BUILT_IN.find("[templates]").unwrap()], menu)
        };
        let problems =
            Replies::parse(&with_menu("[menu]\nintro = \"hi\"\noptions = []\noutro = \"\"\n"), "r.toml").unwrap_err();
        assert_eq!(problems[0].to_string(), "r.toml: menu.options: must list at least one option");
        let problems =
            Replies::parse(&with_menu("[menu]\nintro = 5\noptions = [\"a\"]\noutro = \"\"\n"), "r.toml").unwrap_err();
        assert_eq!(problems[0].field, "menu.intro", "{problems:?}");
        let problems =
            Replies::parse("[menu]\nintro = \"x\"\noptions = [\"a\"]\noutro = \"\"\ntypo = 1\n", "r.toml").unwrap_err();
        assert!(problems[0].message.contains("typo"), "{problems:?}");
    }
}
