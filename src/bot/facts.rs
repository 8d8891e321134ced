//! The shop's facts in its texts, from one place: `[shop]` settings fill `{shipping}`,
//! `{free_shipping_over}`, `{payment_instructions}`, `{hold_minutes}`, `{opening_hours}`,
//! `{returns_days}`, `{max_holds}` and `{payment_expiry_hours}` in every FAQ answer and reply template, so
//! what the bot says and what checkout charges cannot drift apart. `config check` refuses a fact whose
//! setting is unset and warns about a price or percentage written into a text by hand.

use chrono::Weekday;

use super::BotFiles;
pub use super::replies::FACTS;
use super::replies::{Replies, render};
use crate::config::{Problem, ShopSettings};

/// The FAQ file in the config folder (its answers carry facts, so their placeholders are checked here).
pub const FAQ_FILE: &str = "faq.toml";

/// The facts' values, as customers read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    values: Vec<(&'static str, Option<String>)>,
}

impl Facts {
    /// The facts of `shop`, said in the words of `replies`.
    pub fn new(shop: &ShopSettings, replies: &Replies) -> Self {
        let price = |minor: i64| crate::shop::price(minor, &shop.currency_symbol);
        let payment = render(&shop.payment_instructions, &[("order_number", &replies.words.your_order_number)]);
        let values = vec![
            ("shipping", Some(price(shop.shipping_minor))),
            ("free_shipping_over", shop.free_shipping_over_minor.map(price)),
            ("payment_instructions", Some(payment)),
            ("hold_minutes", Some(shop.hold_minutes.to_string())),
            ("opening_hours", Some(opening_hours(shop, replies))),
            ("returns_days", Some(shop.returns_days.to_string())),
            ("max_holds", Some(shop.max_holds_per_customer.to_string())),
            ("payment_expiry_hours", Some(shop.payment_expiry_hours.to_string())),
        ];
        Facts { values }
    }

    /// `text` with every fact filled in (one whose setting is unset is left as it is: `config check` and
    /// start-up refuse texts that use it).
    pub fn fill(&self, text: &str) -> String {
        self.fill_except(text, &[])
    }

    /// The same, leaving `own` placeholders for the reply to fill: a template's own `{shipping}` (what
    /// shipping adds to this order, free over the threshold) is not the shop's US rate.
    pub fn fill_except(&self, text: &str, own: &[&str]) -> String {
        if !text.contains('{') {
            return text.to_owned();
        }
        let known: Vec<(&str, &str)> = self
            .values
            .iter()
            .filter(|(name, _)| !own.contains(name))
            .filter_map(|(name, value)| Some((*name, value.as_deref()?)))
            .collect();
        render(text, &known)
    }

    /// Problems of one text (`source`, `field`): a fact it uses whose setting is unset.
    pub fn unset_in(&self, source: &str, field: &str, text: &str) -> Vec<Problem> {
        self.values
            .iter()
            .filter(|(name, value)| value.is_none() && text.contains(&format!("{{{name}}}")))
            .map(|(name, _)| {
                Problem::new(source, field, format!("uses {{{name}}}, but its setting (shop.{name}_minor) is not set"))
            })
            .collect()
    }
}

/// What is wrong with the bot's texts against the shop's settings: `problems` (a FAQ answer with a
/// placeholder that is not a fact, a fact whose setting is unset) and `warnings` (a price or percentage
/// written by hand in a customer-facing text, or in `shop.payment_instructions`).
#[derive(Debug, Default)]
pub struct TextCheck {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// Checks the texts of `files` against `shop` (the files as written, before facts are filled in).
pub fn check(files: &BotFiles, shop: &ShopSettings) -> TextCheck {
    let facts = Facts::new(shop, &files.replies);
    let mut check = TextCheck::default();
    let mut texts: Vec<(&str, String, &str)> = Vec::new();
    for (topic, answer) in files.router.faq_answers() {
        for placeholder in super::replies::placeholders(answer) {
            if !FACTS.contains(&placeholder) {
                check.problems.push(Problem::new(
                    FAQ_FILE,
                    format!("{topic}.answer"),
                    format!("unknown placeholder {{{placeholder}}} (an answer knows the facts: {})", FACTS.join(", ")),
                ));
            }
        }
        texts.push((FAQ_FILE, format!("{topic}.answer"), answer));
    }
    for (name, text) in files.replies.template_texts() {
        texts.push((super::REPLIES_FILE, name, text));
    }
    texts.push(("settings", "shop.payment_instructions".into(), &shop.payment_instructions));
    for (source, field, text) in &texts {
        check.problems.extend(facts.unset_in(source, field, text));
        for amount in literal_amounts(text, &shop.currency_symbol) {
            check.warnings.push(Problem::new(
                *source,
                field.clone(),
                format!(
                    "{amount:?} is written by hand: say the shop's amounts with a placeholder ({}) so the text \
                     and checkout cannot disagree",
                    "{shipping}, {free_shipping_over}"
                ),
            ));
        }
    }
    check
}

/// "Monday–Saturday, 10:00 AM–7:00 PM (New York time)": `shop.open_days` (runs of consecutive days
/// joined), `open_hour` and `close_hour` on the shop's clock, in `replies`' words.
fn opening_hours(shop: &ShopSettings, replies: &Replies) -> String {
    let time = &replies.time;
    let days: Vec<usize> = (0..7)
        .filter(|i| {
            let day = Weekday::try_from(*i as u8).map(|d| d.to_string().to_ascii_lowercase()).unwrap_or_default();
            shop.open_days.iter().any(|d| d.eq_ignore_ascii_case(&day))
        })
        .collect();
    let name = |i: usize| time.weekdays.get(i).cloned().unwrap_or_default();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for day in days {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == day => *last = day,
            _ => runs.push((day, day)),
        }
    }
    let said: Vec<String> = runs
        .into_iter()
        .map(|(first, last)| match last - first {
            0 => name(first),
            1 => format!("{}, {}", name(first), name(last)),
            _ => render(&time.day_range, &[("first", &name(first)), ("last", &name(last))]),
        })
        .collect();
    let clock = |hour: u32| {
        chrono::NaiveTime::from_hms_opt(hour % 24, 0, 0).map(|t| t.format(&time.clock).to_string()).unwrap_or_default()
    };
    render(
        &time.opening_hours,
        &[("days", &said.join(", ")), ("open", &clock(shop.open_hour)), ("close", &clock(shop.close_hour))],
    )
}

/// Prices and percentages written into a text by hand ("$6", "€80", "20%", "15 USD"): each is a fact
/// that should come from the settings (a placeholder), or it will say one thing while checkout does
/// another. Placeholders themselves are skipped.
pub fn literal_amounts(text: &str, currency_symbol: &str) -> Vec<String> {
    let mut symbols: Vec<&str> = vec!["$", "€", "£", "¥"];
    if !currency_symbol.is_empty() && !symbols.contains(&currency_symbol) {
        symbols.push(currency_symbol);
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let number_at = |from: usize| -> Option<(usize, usize)> {
        let start = chars.get(from)?.0;
        let mut digits = chars[from..].iter().take_while(|(_, c)| c.is_ascii_digit() || *c == '.' || *c == ',').count();
        // "$6, free": the comma ends the sentence, not the number.
        while digits > 0 && !chars[from + digits - 1].1.is_ascii_digit() {
            digits -= 1;
        }
        (digits > 0).then(|| (start, chars.get(from + digits).map_or(text.len(), |(at, _)| *at)))
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c == '{' {
            i += chars[i..].iter().position(|(_, c)| *c == '}').unwrap_or(0) + 1;
            continue;
        }
        if let Some(symbol) = symbols.iter().find(|s| text[at..].starts_with(**s)) {
            let after = i + symbol.chars().count();
            let skip_space = usize::from(chars.get(after).is_some_and(|(_, c)| *c == ' '));
            if let Some((_, end)) = number_at(after + skip_space) {
                found.push(text[at..end].to_owned());
                i = chars.iter().position(|(p, _)| *p >= end).unwrap_or(chars.len());
                continue;
            }
        }
        let starts_number = c.is_ascii_digit() && (i == 0 || !chars[i - 1].1.is_alphanumeric());
        if starts_number && let Some((start, end)) = number_at(i) {
            let rest = text[end..].trim_start();
            let unit = ["%", "percent", "USD", "EUR", "GBP", "dollars", "dollar"]
                .into_iter()
                .find(|unit| rest.starts_with(unit) && !rest[unit.len()..].starts_with(char::is_alphabetic));
            if let Some(unit) = unit {
                found.push(format!("{} {unit}", &text[start..end]).replace(" %", "%"));
            }
            i = chars.iter().position(|(p, _)| *p >= end).unwrap_or(chars.len());
            continue;
        }
        i += 1;
    }
    found
}

impl Replies {
    /// These texts with the shop's facts filled in (the same in every reply, so filled once).
    pub fn with_facts(mut self, facts: &Facts) -> Self {
        for (text, own) in self.templates.texts_mut() {
            *text = facts.fill_except(text, own);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_and_percentages_written_by_hand_are_found() {
        let found = literal_amounts("Tracked US shipping is $6, free over $ 100.50; 20% off, or 15 USD.", "$");
        assert_eq!(found, ["$6", "$ 100.50", "20%", "15 USD"]);
        assert_eq!(
            literal_amounts("Shipping is {shipping}, free over {free_shipping_over}.", "$"),
            Vec::<String>::new()
        );
        assert_eq!(literal_amounts("Sat 12–4pm, within 3 days, size 10.5, W32 L30", "$"), Vec::<String>::new());
        assert_eq!(literal_amounts("€80 in a euro shop", "€"), ["€80"]);
    }

    #[test]
    fn a_templates_own_placeholder_is_left_for_the_reply_even_when_a_fact_has_its_name() {
        // `address_international_rate` says the rate of the country abroad as its own {shipping}: filled
        // with the shop's US rate at start, every such reply said "$8".
        let shop = crate::config::Settings::defaults().shop;
        let replies = Replies::load(std::path::Path::new("/nonexistent")).expect("built-in");
        let facts = Facts::new(&shop, &replies);
        let filled = replies.with_facts(&facts);
        assert!(filled.templates.address_international_rate.contains("{shipping}"));
        assert!(filled.templates.offer_at_price.contains("{shipping}"));
        assert!(!filled.templates.hold_length.contains('{'), "facts still fill the others");
    }

    #[test]
    fn the_shipped_facts_read_as_the_settings_say() {
        let shop = crate::config::Settings::defaults().shop;
        let replies = Replies::load(std::path::Path::new("/nonexistent")).expect("built-in");
        let facts = Facts::new(&shop, &replies);
        assert_eq!(facts.fill("{shipping}, free over {free_shipping_over}"), "$8, free over $100");
        assert_eq!(facts.fill("{opening_hours}"), "Monday–Saturday, 10:00 AM–7:00 PM (New York time)");
        assert!(facts.fill("{payment_instructions}").contains("put your order number in the note"));
        let mut no_free = shop.clone();
        no_free.free_shipping_over_minor = None;
        let problems =
            Facts::new(&no_free, &replies).unset_in("faq.toml", "shipping.answer", "free over {free_shipping_over}");
        assert_eq!(
            problems[0].to_string(),
            "faq.toml: shipping.answer: uses {free_shipping_over}, but its setting (shop.free_shipping_over_minor) is not set"
        );
    }
}
