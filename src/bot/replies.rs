//! The customer-facing texts, read from `config/replies.toml` (compiled in as the fallback, so the bot
//! speaks even without a config folder).

use std::path::Path;

use chrono::format::StrftimeItems;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone};
use serde::Deserialize;

use crate::config::{Problem, read_or_built_in};
use crate::shop::fit::{FitsLike, Length, Measured, trim_number};
use crate::store::entities::orders::OrderStatus;

pub const REPLIES_FILE: &str = "replies.toml";
const BUILT_IN: &str = include_str!("../../config/replies.toml");

/// The facts any customer-facing text may use, besides its own placeholders (their values:
/// `facts.rs`).
pub const FACTS: &[&str] = &[
    "shipping",
    "free_shipping_over",
    "payment_instructions",
    "hold_minutes",
    "opening_hours",
    "returns_days",
    "max_holds",
    "payment_expiry_hours",
];

/// Everything `replies.toml` holds: the menu, the replies, and the words facts are said in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replies {
    pub menu: MenuTexts,
    pub templates: Templates,
    pub words: Words,
    pub order_statuses: OrderStatuses,
    pub time: TimeWords,
    pub staff: StaffTexts,
}

/// Declares the sections of templates and the placeholders each template may use, in one place, so
/// loading, checking and rendering cannot disagree. A section may also hold fields that are not
/// templates (after `and`), which its own checks validate.
macro_rules! templates {
    ($(
        $(#[$doc:meta])*
        $section:literal $type:ident {
            $($name:ident: [$($placeholder:literal),*]),+ $(,)?
        }
        $(and { $($(#[$field_doc:meta])* $field:ident: $field_type:ty),+ $(,)? })?
    )+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $type {
            $(pub $name: String,)+
            $($($(#[$field_doc])* pub $field: $field_type,)+)?
        }

        impl $type {
            /// Each template's dotted name, text and allowed placeholders.
            fn each(&self) -> Vec<(String, &str, &'static [&'static str])> {
                vec![$((format!("{}.{}", $section, stringify!($name)), self.$name.as_str(), &[$($placeholder),*])),+]
            }

            /// Each template's text, to fill in what is the same for every reply (facts.rs does), with its
            /// own placeholders (which a fact of the same name must not fill).
            #[allow(dead_code, reason = "the macro declares it for every section; only the templates are filled")]
            pub(super) fn texts_mut(&mut self) -> Vec<(&mut String, &'static [&'static str])> {
                vec![$((&mut self.$name, &[$($placeholder),*])),+]
            }
        }
    )+};
}

templates! {
    /// The replies to each kind of question; `{placeholders}` are filled with facts.
    "templates" Templates {
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
        item_pick: ["count"],
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
        hold_limit: ["title", "count", "held"],
        hold_waitlist_first: ["title", "until"],
        hold_other_until: ["title", "until"],
        item_in_pending_order: ["title"],
        cancel_done: ["title"],
        cancel_none: [],
        checkout_done: ["order_number", "items", "total", "payment"],
        checkout_nothing: [],
        waitlist_free: ["title", "price"],
        order_paid_notice: ["order_number"],
        order_shipped_notice: ["order_number", "carrier", "tracking"],
        order_cancelled_notice: ["order_number"],
        order_delivered_notice: ["order_number"],
        order_returned_notice: ["order_number"],
        order_tracking_notice: ["order_number", "carrier", "tracking"],
        payment_reminder_notice: ["order_number", "total", "payment"],
        order_expired_notice: ["order_number"],
        hold_ended_notice: ["title"],
        menu_hint: [],
        handoff_waiting: [],
        complaint: [],
        other_language: [],
        unclear_twice: [],
        price: ["title", "price"],
        offer_firm: ["title", "price"],
        offer_at_price: ["title", "price", "shipping", "total"],
        offer_at_price_free: ["title", "price"],
        offer_passed: ["title", "price", "offer"],
        authentic: ["title"],
        photos: ["title", "photo"],
        photos_none: ["title"],
        condition: ["title", "condition", "flaws"],
        fact_unknown: ["title"],
        waitlist_joined: ["title"],
        waitlist_available: ["title"],
        hold_length: [],
        swap_released: ["title"],
        swap_which: [],
        search_intro: ["count"],
        search_nearest: ["category", "size"],
        size_ask: ["title"],
        address_ask: [],
        address_missing: ["missing"],
        address_confirm: ["address"],
        address_updated: ["order_number", "address"],
        address_too_late: ["order_number"],
        address_international: ["country"],
        address_international_rate: ["country", "shipping", "total"],
        address_no_order: [],
        shipping_abroad_rate: ["country", "rate"],
        shipping_abroad_quote: ["country"],
        order_cancelled: ["order_number"],
        order_cancel_none: [],
        order_cancel_human: ["order_number", "status"],
    } and {
        /// A line sent in place of a photo TikTok does not let the shop send (images are unavailable in the
        /// US and other regions); `{photo}` is the photo's URL. Without it the photo is skipped.
        photo_link: Option<String>,
    }

    /// The words facts are said in inside the replies: sizes, measurements, fit beyond the chart.
    "words" Words {
        no_size: [],
        sold: [],
        measured: ["inches", "cm", "measurement"],
        measurements: ["measurements"],
        length: ["measured", "length"],
        length_unnamed: ["measured"],
        smaller_than: ["size"],
        bigger_than: ["size"],
        size_an: ["size"],
        size_a: ["size"],
        your_order_number: [],
        your_offer: [],
        pieces: [],
        from_body: ["size", "measured"],
        field_name: [],
        field_street: [],
        field_city: [],
        field_state: [],
        field_zip: [],
    } and {
        /// Sizes that start with one of these are said with `size_an` ("an M"), others with `size_a`.
        an_before: Vec<String>,
    }

    /// How each order status is said in `templates.order_status`.
    "order_statuses" OrderStatuses {
        pending: [],
        paid: [],
        shipped: [],
        delivered: [],
        returned: [],
        cancelled: [],
    }

    /// How moments are said in the shop's local time: until when a hold lasts, when the team is back.
    "time" TimeWords {
        today: ["time", "zone"],
        tomorrow: ["time", "zone"],
        later: ["day", "time", "zone"],
        opens_today: ["hour"],
        opens_tomorrow: ["hour"],
        opens_on: ["day", "hour"],
        opens_unknown: [],
        closes: ["hour"],
        opening_hours: ["days", "open", "close"],
        day_range: ["first", "last"],
    } and {
        /// The time of day, as a strftime format ("%-I:%M %p" is "3:45 PM").
        clock: String,
        /// The days of the week, Monday first.
        weekdays: Vec<String>,
    }

    /// Why a conversation went to a person, as the staff notice and the handoff list say it.
    "staff" StaffTexts {
        notice: ["who", "reason", "conversation"],
        asked_person: [],
        complaint: ["kind", "message"],
        complaint_refund: [],
        complaint_missing: [],
        complaint_not_as_described: [],
        complaint_upset: [],
        other_language: ["message"],
        offer: ["offer", "title", "sku", "price", "message"],
        address_shipped: ["order_number"],
        address_locked: ["order_number"],
        international: ["order_number", "country"],
        shipping_quote: ["country", "message"],
        cancel_order: ["order_number", "status"],
        cancel_failed: ["order_number", "error"],
    }
}

impl Words {
    /// A size as said in a sentence: "an M", "a US 9 (EU 42.5, UK 8)".
    pub fn say_size(&self, size: &str) -> String {
        let an = self.an_before.iter().any(|start| size.starts_with(start.as_str()));
        render(if an { &self.size_an } else { &self.size_a }, &[("size", size)])
    }

    /// The size a piece fits like, as said in a sentence: "an M", "smaller than an XS".
    pub fn say_fits_like(&self, fits_like: &FitsLike) -> String {
        match fits_like {
            FitsLike::Size(size) => self.say_size(size),
            FitsLike::SmallerThan(size) => render(&self.smaller_than, &[("size", &self.say_size(size))]),
            FitsLike::BiggerThan(size) => render(&self.bigger_than, &[("size", &self.say_size(size))]),
        }
    }

    /// One measurement: "20.5 in (52 cm) pit to pit" (inches to the nearest half).
    pub fn say_measured(&self, measured: &Measured) -> String {
        let inches = (measured.cm / 2.54 * 2.0).round() / 2.0;
        render(
            &self.measured,
            &[("inches", &trim_number(inches)), ("cm", &trim_number(measured.cm)), ("measurement", &measured.name)],
        )
    }

    /// Every measurement of an item in one sentence; `None` when it has none.
    pub fn say_measurements(&self, all: &[Measured]) -> Option<String> {
        let said: Vec<String> = all.iter().map(|m| self.say_measured(m)).collect();
        (!said.is_empty()).then(|| render(&self.measurements, &[("measurements", &said.join(", "))]))
    }

    /// The leg length as a sentence: "81 cm inseam, regular length."
    pub fn say_length(&self, length: &Length) -> String {
        let measured = self.say_measured(&length.measured);
        match &length.name {
            Some(name) => render(&self.length, &[("measured", &measured), ("length", name)]),
            None => render(&self.length_unnamed, &[("measured", &measured)]),
        }
    }
}

impl OrderStatuses {
    /// How `status` is said to the customer.
    pub fn say(&self, status: OrderStatus) -> &str {
        match status {
            OrderStatus::Pending => &self.pending,
            OrderStatus::Paid => &self.paid,
            OrderStatus::Shipped => &self.shipped,
            OrderStatus::Delivered => &self.delivered,
            OrderStatus::Returned => &self.returned,
            OrderStatus::Cancelled => &self.cancelled,
        }
    }
}

impl TimeWords {
    fn weekday(&self, date: NaiveDate) -> &str {
        self.weekdays.get(date.weekday().num_days_from_monday() as usize).map_or("", String::as_str)
    }

    /// A moment as customers read it, `at` and `now` both in the shop's time zone: "3:45 PM EST today",
    /// "9:10 AM EDT tomorrow", "Friday 9:10 AM EST" (the zone's abbreviation at that moment, so it
    /// follows daylight saving).
    pub fn say_moment<Tz: TimeZone>(&self, at: &DateTime<Tz>, now: &DateTime<Tz>) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        let time = at.format(&self.clock).to_string();
        let zone = at.format("%Z").to_string();
        let values = [("time", time.as_str()), ("zone", zone.as_str())];
        match (at.date_naive() - now.date_naive()).num_days() {
            0 => render(&self.today, &values),
            1 => render(&self.tomorrow, &values),
            _ => render(&self.later, &[("day", self.weekday(at.date_naive())), values[0], values[1]]),
        }
    }

    /// When the team is next in: at `hour` on `date`, `days` from today ("tomorrow at 10:00"); `None`
    /// says the shop does not know ("as soon as we can").
    pub fn say_opening(&self, next: Option<(i64, NaiveDate)>, hour: u32) -> String {
        let hour = hour.to_string();
        match next {
            Some((0, _)) => render(&self.opens_today, &[("hour", &hour)]),
            Some((1, _)) => render(&self.opens_tomorrow, &[("hour", &hour)]),
            Some((_, date)) => render(&self.opens_on, &[("day", self.weekday(date)), ("hour", &hour)]),
            None => self.opens_unknown.clone(),
        }
    }

    /// Until when the team is in today: "19:00".
    pub fn say_closing(&self, hour: u32) -> String {
        render(&self.closes, &[("hour", &hour.to_string())])
    }
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
pub(super) fn placeholders(template: &str) -> Vec<&str> {
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
        let (text, source) = read_or_built_in(config_dir, REPLIES_FILE, BUILT_IN)?;
        Self::parse(&text, &source)
    }

    /// Parses and validates the texts; problems name `source` and the field.
    pub fn parse(text: &str, source: &str) -> Result<Self, Vec<Problem>> {
        let replies: Replies = toml::from_str(text).map_err(|e| {
            let field = e.span().map_or_else(|| "(syntax)".into(), |span| field_at(text, span.start));
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
        let every_template = [
            replies.templates.each(),
            replies.words.each(),
            replies.order_statuses.each(),
            replies.time.each(),
            replies.staff.each(),
        ];
        for (section, templates) in every_template.iter().enumerate() {
            // The reply templates may also say the shop's facts; the words and times are parts of them.
            let facts = if section == 0 { FACTS } else { &[] };
            for (name, text, allowed) in templates {
                if text.trim().is_empty() {
                    problems.push(Problem::new(source, name, "must not be empty"));
                }
                for placeholder in placeholders(text) {
                    if !allowed.contains(&placeholder) && !facts.contains(&placeholder) {
                        let known = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
                        let facts = if facts.is_empty() {
                            String::new()
                        } else {
                            format!("; and the facts: {}", facts.join(", "))
                        };
                        problems.push(Problem::new(
                            source,
                            name,
                            format!("unknown placeholder {{{placeholder}}} (this template knows: {known}{facts})"),
                        ));
                    }
                }
            }
        }
        if let Some(link) = &replies.templates.photo_link {
            if link.trim().is_empty() {
                problems.push(Problem::new(
                    source,
                    "templates.photo_link",
                    "must not be empty (leave it out to skip photos)",
                ));
            }
            for placeholder in placeholders(link) {
                if placeholder != "photo" {
                    problems.push(Problem::new(
                        source,
                        "templates.photo_link",
                        format!("unknown placeholder {{{placeholder}}} (this template knows: photo)"),
                    ));
                }
            }
        }
        if replies.words.an_before.iter().any(std::string::String::is_empty) {
            problems.push(Problem::new(source, "words.an_before", "must not hold an empty text"));
        }
        if let Err(e) = StrftimeItems::new(&replies.time.clock).parse() {
            problems.push(Problem::new(source, "time.clock", format!("not a strftime time format: {e}")));
        }
        if replies.time.weekdays.len() != 7 || replies.time.weekdays.iter().any(|day| day.trim().is_empty()) {
            problems.push(Problem::new(source, "time.weekdays", "must name the 7 days of the week, Monday first"));
        }
        if let Some(url) = &replies.menu.image_url
            && url::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
        {
            problems.push(Problem::new(source, "menu.image_url", format!("{url:?} is not an http(s) URL")));
        }
        if problems.is_empty() { Ok(replies) } else { Err(problems) }
    }

    /// Each reply template by its dotted name, as written (before facts are filled in).
    pub fn template_texts(&self) -> Vec<(String, &str)> {
        self.templates.each().into_iter().map(|(name, text, _)| (name, text)).collect()
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

    fn shipped() -> Replies {
        Replies::parse(BUILT_IN, "replies.toml").unwrap()
    }

    #[test]
    fn sizes_are_said_with_the_article_they_are_spoken_with() {
        let words = shipped().words;
        assert_eq!(words.say_size("M"), "an M");
        assert_eq!(words.say_size("XL"), "an XL");
        assert_eq!(words.say_size("US 9 (EU 42.5, UK 8)"), "a US 9 (EU 42.5, UK 8)");
        assert_eq!(words.say_size("8"), "an 8");
        assert_eq!(words.say_fits_like(&FitsLike::BiggerThan("XXL".into())), "bigger than an XXL");
        assert_eq!(words.say_fits_like(&FitsLike::SmallerThan("XS".into())), "smaller than an XS");
    }

    #[test]
    fn measurements_and_lengths_are_said_in_the_configured_words() {
        let words = shipped().words;
        let inseam = Measured { name: "inseam".into(), cm: 81.0 };
        let all = [Measured { name: "pit to pit".into(), cm: 58.0 }, Measured { name: "length".into(), cm: 70.5 }];
        assert_eq!(
            words.say_measurements(&all).as_deref(),
            Some("Measures 23 in (58 cm) pit to pit, 28 in (70.5 cm) length.")
        );
        assert_eq!(words.say_measurements(&[]), None);
        assert_eq!(
            words.say_length(&Length { measured: inseam.clone(), name: Some("regular".into()) }),
            "32 in (81 cm) inseam, regular length."
        );
        assert_eq!(words.say_length(&Length { measured: inseam, name: None }), "32 in (81 cm) inseam.");
    }

    #[test]
    fn moments_are_said_relative_to_today_in_the_shops_clock() {
        let time = shipped().time;
        let new_york = chrono_tz::America::New_York;
        let at = |text: &str| {
            let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
            local.and_local_timezone(new_york).unwrap()
        };
        let now = at("2026-11-23 11:00"); // a Monday
        // The day and the time zone are said, so nobody misreads a hold's end.
        assert_eq!(time.say_moment(&at("2026-11-23 15:45"), &now), "3:45 PM EST today");
        assert_eq!(time.say_moment(&at("2026-11-24 09:10"), &now), "9:10 AM EST tomorrow");
        assert_eq!(time.say_moment(&at("2026-11-27 09:10"), &now), "Friday 9:10 AM EST");
        // In summer New York is on daylight time, and the label says so.
        let summer = at("2026-07-06 11:00");
        assert_eq!(time.say_moment(&at("2026-07-06 21:04"), &summer), "9:04 PM EDT today");
        // The night the clocks go back: 1:30 AM tomorrow is on standard time again.
        let fall = at("2026-10-31 23:00");
        let after = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 6, 30, 0).unwrap().with_timezone(&new_york);
        assert_eq!(time.say_moment(&after, &fall), "1:30 AM EST tomorrow");
        assert_eq!(time.say_closing(19), "19:00");
    }

    #[test]
    fn every_section_rejects_an_unknown_placeholder_and_a_missing_text() {
        let unknown = BUILT_IN.replace("smaller_than = \"smaller than {size}\"", "smaller_than = \"under {sise}\"");
        let problems = Replies::parse(&unknown, "r.toml").unwrap_err();
        assert_eq!(
            problems[0].to_string(),
            "r.toml: words.smaller_than: unknown placeholder {sise} (this template knows: size)"
        );
        let missing = BUILT_IN.replace("paid = \"paid and being packed\"\n", "");
        let problems = Replies::parse(&missing, "r.toml").unwrap_err();
        assert!(problems[0].message.contains("missing field `paid`"), "{problems:?}");
        let bad_clock = BUILT_IN.replace("clock = \"%-I:%M %p\"", "clock = \"%Q\"");
        assert_eq!(Replies::parse(&bad_clock, "r.toml").unwrap_err()[0].field, "time.clock");
        let six_days = BUILT_IN.replace(", \"Sunday\"]", "]");
        assert_eq!(Replies::parse(&six_days, "r.toml").unwrap_err()[0].field, "time.weekdays");
    }
}
