//! Fit advice from real measurements: the size chart staff edit in `config/size_chart.toml` turns an
//! item's measurements into the size it fits like, and a customer's usual size into a yes, a no, snug or
//! roomy. Without the measurement that decides, there is no verdict: the assessment names what is missing.
//! It is data: the bot says it in the words of `config/replies.toml`.

use std::path::Path;

use serde::Deserialize;

use crate::config::{Problem, parse_toml, read_or_built_in};
use crate::store::entities::items;

pub const SIZE_CHART_FILE: &str = "size_chart.toml";
const BUILT_IN: &str = include_str!("../../config/size_chart.toml");

/// The three charts: tops by pit-to-pit, bottoms by waist (and inseam for the length), shoes by insole.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeChart {
    pub tops: Chart,
    pub bottoms: Chart,
    pub shoes: Chart,
}

/// One chart: which categories it covers, the measurement that decides the size, and the sizes in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chart {
    pub categories: Vec<String>,
    pub measurement: String,
    pub sizes: Vec<SizeRow>,
    /// A second measurement said in words next to the size ("81 cm inseam, regular length").
    #[serde(default)]
    pub length: Option<LengthRule>,
}

/// A size covers measurements from `min` (included) to `max` (excluded), in centimetres.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeRow {
    pub size: String,
    pub min: f64,
    pub max: f64,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Shoes: the EU and UK sizes of this (US) size.
    #[serde(default)]
    pub eu: Option<String>,
    #[serde(default)]
    pub uk: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthRule {
    pub measurement: String,
    pub lengths: Vec<LengthRow>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthRow {
    pub name: String,
    pub min: f64,
    pub max: f64,
}

/// Where a measurement falls on a chart: below its smallest size, on a size, or above its largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Below,
    Size(usize),
    Above,
}

/// How an item fits a customer who usually wears a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fits,
    /// One size smaller than they usually wear.
    Snug,
    /// One size bigger than they usually wear.
    Roomy,
    TooSmall,
    TooBig,
}

/// The size a piece fits like: a size of its chart (or staff's own label), or beyond the chart's ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FitsLike {
    Size(String),
    /// Smaller than this, the chart's smallest size.
    SmallerThan(String),
    /// Bigger than this, the chart's largest size.
    BiggerThan(String),
}

/// One measurement of an item: its readable name ("pit to pit") and its value in centimetres.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub name: String,
    pub cm: f64,
}

/// The length measurement of a chart with a length rule, and the length the chart names for it
/// ("regular"), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Length {
    pub measured: Measured,
    pub name: Option<String>,
}

/// Everything the bot can honestly say about an item's fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The deciding measurement, readable ("pit to pit").
    pub measurement: String,
    /// Its value on this item, in centimetres, when measured.
    pub measured: Option<f64>,
    /// The size it fits like (staff's `fits_like` when set, else computed); `None` when unknown.
    pub fits_like: Option<FitsLike>,
    /// The fits-like size is the tag size.
    pub true_to_size: bool,
    /// The leg length, when the chart has a length rule and the item that measurement.
    pub length: Option<Length>,
    /// Measurements the chart needs that the item lacks, readable.
    pub missing: Vec<String>,
    /// The customer's usual size as the chart names it, and the verdict (when both sizes are known).
    pub customer: Option<(String, Option<Verdict>)>,
    /// The customer's own measurement the size came from ("40 in chest"), when they gave one.
    pub customer_measured: Option<String>,
}

impl SizeChart {
    /// Reads `size_chart.toml` from `config_dir`, or the built-in chart when the file is absent.
    pub fn load(config_dir: &Path) -> Result<Self, Vec<Problem>> {
        let (text, source) = read_or_built_in(config_dir, SIZE_CHART_FILE, BUILT_IN)?;
        Self::parse(&text, &source)
    }

    /// Parses and validates a chart; every problem names `source` and the field.
    pub fn parse(text: &str, source: &str) -> Result<Self, Vec<Problem>> {
        let chart: SizeChart = parse_toml(text, source)?;
        let mut problems = Vec::new();
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (name, c) in chart.each() {
            if c.categories.is_empty() {
                problems.push(Problem::new(source, format!("{name}.categories"), "must list at least one category"));
            }
            for category in &c.categories {
                if let Some((other, _)) = seen.iter().find(|(_, seen)| seen.eq_ignore_ascii_case(category)) {
                    problems.push(Problem::new(
                        source,
                        format!("{name}.categories"),
                        format!("{category:?} is already in {other}.categories"),
                    ));
                }
                seen.push((name, category));
            }
            if c.measurement.trim().is_empty() {
                problems.push(Problem::new(source, format!("{name}.measurement"), "must name a measurement"));
            }
            if c.sizes.is_empty() {
                problems.push(Problem::new(source, format!("{name}.sizes"), "must list at least one size"));
            }
            let ranges: Vec<(f64, f64)> = c.sizes.iter().map(|s| (s.min, s.max)).collect();
            check_ranges(&ranges, source, &format!("{name}.sizes"), &mut problems);
            if let Some(length) = &c.length {
                let ranges: Vec<(f64, f64)> = length.lengths.iter().map(|l| (l.min, l.max)).collect();
                check_ranges(&ranges, source, &format!("{name}.length.lengths"), &mut problems);
            }
        }
        if problems.is_empty() { Ok(chart) } else { Err(problems) }
    }

    fn each(&self) -> [(&'static str, &Chart); 3] {
        [("tops", &self.tops), ("bottoms", &self.bottoms), ("shoes", &self.shoes)]
    }

    /// The chart for an item category, if any covers it.
    pub fn chart_for(&self, category: &str) -> Option<&Chart> {
        self.each().into_iter().map(|(_, c)| c).find(|c| c.categories.iter().any(|k| k.eq_ignore_ascii_case(category)))
    }

    /// The size an item fits like, computed from its measurements (for `fits_like` when staff left it empty).
    pub fn computed_fits_like(&self, item: &items::Model) -> Option<String> {
        let chart = self.chart_for(&item.category)?;
        let cm = measurement(item, &chart.measurement)?;
        match chart.place(cm) {
            Place::Size(i) => Some(chart.label(i)),
            Place::Below | Place::Above => None,
        }
    }

    /// The size an item fits like: staff's call when they made one, else computed from its measurements.
    pub fn fits_like(&self, item: &items::Model) -> Option<String> {
        item.fits_like_size.clone().or_else(|| self.computed_fits_like(item))
    }

    /// What can be said about `item`'s fit, for a customer who may have named their usual size in `text`
    /// (`letter_size` is the size word the router already found). `None` when no chart covers the item.
    pub fn assess(&self, item: &items::Model, text: &str, letter_size: Option<&str>) -> Option<Assessment> {
        let chart = self.chart_for(&item.category)?;
        let measured = measurement(item, &chart.measurement);
        let mut missing = Vec::new();
        // Staff's call wins over the computed one: they had the piece in their hands.
        let staff = item.fits_like_size.as_deref().filter(|s| !s.trim().is_empty());
        let place = match (staff, measured) {
            (Some(label), _) => chart.find(label).map(Place::Size),
            (None, Some(cm)) => Some(chart.place(cm)),
            (None, None) => None,
        };
        if measured.is_none() {
            missing.push(readable(&chart.measurement));
        }
        let fits_like = match (staff, place) {
            (_, Some(place)) => Some(chart.fits_like_at(place)),
            (Some(label), None) => Some(FitsLike::Size(label.to_owned())),
            (None, None) => None,
        };
        let tag = item.tag_size.as_deref().and_then(|t| chart.find(t));
        let true_to_size = matches!((place, tag), (Some(Place::Size(a)), Some(b)) if a == b);
        let length = chart.length.as_ref().and_then(|rule| match measurement(item, &rule.measurement) {
            Some(cm) => Some(Length {
                measured: Measured { name: readable(&rule.measurement), cm },
                name: rule.lengths.iter().find(|l| l.min <= cm && cm < l.max).map(|l| l.name.clone()),
            }),
            None => {
                missing.push(readable(&rule.measurement));
                None
            }
        });
        let body = chart.body_size(text);
        let customer_measured = body.as_ref().map(|(_, said)| said.clone());
        let customer = body.map(|(index, _)| index).or_else(|| chart.customer_size(text, letter_size)).map(|index| {
            let verdict = place.map(|place| verdict(chart.position(place), index as i64));
            (chart.label(index), verdict)
        });
        Some(Assessment {
            measurement: readable(&chart.measurement),
            measured,
            fits_like,
            true_to_size,
            length,
            missing,
            customer,
            customer_measured,
        })
    }
}

/// Ranges must be non-empty, ascending and touching, so every value in between has exactly one size.
fn check_ranges(ranges: &[(f64, f64)], source: &str, field: &str, problems: &mut Vec<Problem>) {
    for (i, (min, max)) in ranges.iter().enumerate() {
        if !(min.is_finite() && max.is_finite() && min < max) {
            problems.push(Problem::new(
                source,
                format!("{field}[{i}]"),
                format!("min ({min}) must be below max ({max})"),
            ));
        }
        if i > 0 && ranges[i - 1].1 != *min {
            problems.push(Problem::new(
                source,
                format!("{field}[{i}].min"),
                format!(
                    "must equal the max of the size before ({}), so sizes neither overlap nor leave gaps",
                    ranges[i - 1].1
                ),
            ));
        }
    }
}

/// Room a garment needs beyond half the body's chest, in centimetres (lying flat).
const EASE_CM: f64 = 3.0;

fn verdict(item: i64, customer: i64) -> Verdict {
    match item - customer {
        0 => Verdict::Fits,
        -1 => Verdict::Snug,
        1 => Verdict::Roomy,
        d if d < 0 => Verdict::TooSmall,
        _ => Verdict::TooBig,
    }
}

impl Chart {
    /// Where `cm` falls: the size whose `min <= cm < max`, or below the first, or at/above the last max.
    pub fn place(&self, cm: f64) -> Place {
        match self.sizes.iter().position(|s| s.min <= cm && cm < s.max) {
            Some(i) => Place::Size(i),
            None if self.sizes.first().is_some_and(|s| cm < s.min) => Place::Below,
            None => Place::Above,
        }
    }

    fn position(&self, place: Place) -> i64 {
        match place {
            Place::Below => -1,
            Place::Size(i) => i as i64,
            Place::Above => self.sizes.len() as i64,
        }
    }

    /// How customers read size `index`: "M", or for shoes "US 9 (EU 42.5, UK 8)".
    pub fn label(&self, index: usize) -> String {
        let row = &self.sizes[index];
        match (&row.eu, &row.uk) {
            (None, None) => row.size.clone(),
            (eu, uk) => {
                let others: Vec<String> = [("EU", eu), ("UK", uk)]
                    .into_iter()
                    .filter_map(|(name, v)| v.as_ref().map(|v| format!("{name} {v}")))
                    .collect();
                format!("US {} ({})", row.size, others.join(", "))
            }
        }
    }

    fn fits_like_at(&self, place: Place) -> FitsLike {
        match place {
            Place::Size(i) => FitsLike::Size(self.label(i)),
            Place::Below => FitsLike::SmallerThan(self.label(0)),
            Place::Above => FitsLike::BiggerThan(self.label(self.sizes.len() - 1)),
        }
    }

    /// The size a label names: the size itself or an alias ("medium", "W32", "us 9", "eu 42.5", "uk 8";
    /// for shoes a bare number of 30 or more is an EU size, below that a US size). Case and spaces do not
    /// matter.
    pub fn find(&self, label: &str) -> Option<usize> {
        let compact: String = label.to_uppercase().chars().filter(|c| !c.is_whitespace()).collect();
        let same =
            |value: &str| value.to_uppercase().chars().filter(|c| !c.is_whitespace()).collect::<String>() == compact;
        if let Some(i) = self.sizes.iter().position(|s| same(&s.size) || s.aliases.iter().any(|a| same(a))) {
            return Some(i);
        }
        if let Some(found) = self.find_shoe(&compact) {
            return Some(found);
        }
        // "W32 L30": the first part that names a size.
        let words: Vec<&str> = label.split_whitespace().collect();
        if words.len() > 1 {
            return words.iter().find_map(|w| self.find(w));
        }
        None
    }

    fn find_shoe(&self, compact: &str) -> Option<usize> {
        let shoe = |prefix: &str, pick: fn(&SizeRow) -> Option<&String>| {
            let number = compact.strip_prefix(prefix)?;
            self.sizes.iter().position(|s| pick(s).is_some_and(|v| v.eq_ignore_ascii_case(number)))
        };
        shoe("EU", |s| s.eu.as_ref())
            .or_else(|| shoe("UK", |s| s.uk.as_ref()))
            .or_else(|| shoe("US", |s| Some(&s.size)))
            .or_else(|| {
                let number: f64 = compact.parse().ok()?;
                if number >= 30.0 && self.sizes.iter().any(|s| s.eu.is_some()) {
                    shoe("", |s| s.eu.as_ref())
                } else {
                    None
                }
            })
    }

    /// The size a customer's own measurement comes to, and how it is said: a chest in inches ("my chest
    /// is 40in": a garment a few centimetres wider than half of it, lying flat) for a chart that goes by
    /// pit to pit, a waist ("32x30", "32 waist") for one that goes by the waist.
    fn body_size(&self, text: &str) -> Option<(usize, String)> {
        let lower = text.to_lowercase().replace('"', " in ");
        let tokens: Vec<&str> =
            lower.split(|c: char| !(c.is_alphanumeric() || c == '.')).filter(|t| !t.is_empty()).collect();
        // "40in", "40 in", "40 inches", "40 inch"
        let inches = tokens.iter().enumerate().find_map(|(i, token)| {
            let digits = token.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let unit = &token[digits.len()..];
            let unit = if unit.is_empty() { tokens.get(i + 1).copied().unwrap_or("") } else { unit };
            let value: f64 = digits.parse().ok()?;
            matches!(unit, "in" | "inch" | "inches").then_some(value)
        });
        match self.measurement.as_str() {
            "pit_to_pit" if tokens.contains(&"chest") => {
                let chest = inches.or_else(|| {
                    tokens.iter().filter_map(|t| t.parse::<f64>().ok()).find(|v| (28.0..=60.0).contains(v))
                })?;
                // The garment lying flat: half the chest, plus a little room to move.
                let place = self.place(chest * 2.54 / 2.0 + EASE_CM);
                let index = match place {
                    Place::Size(i) => i,
                    Place::Below => 0,
                    Place::Above => self.sizes.len().checked_sub(1)?,
                };
                Some((index, format!("{} in chest", trim_number(chest))))
            }
            "waist" => {
                let by_leg = tokens.iter().find_map(|t| {
                    let (w, l) = t.split_once('x')?;
                    let numbers = w.parse::<u32>().is_ok() && l.parse::<u32>().is_ok();
                    numbers.then(|| w.to_owned())
                });
                let waist = by_leg.or_else(|| {
                    tokens.contains(&"waist").then(|| inches.map(trim_number)).flatten().or_else(|| {
                        let at = tokens.iter().position(|t| *t == "waist")?;
                        [at.checked_sub(1), Some(at + 1)]
                            .into_iter()
                            .flatten()
                            .find_map(|i| tokens.get(i).filter(|t| t.parse::<u32>().is_ok()).map(|t| (*t).to_owned()))
                    })
                })?;
                Some((self.find(&waist)?, format!("{waist} in waist")))
            }
            _ => None,
        }
    }

    /// The size a customer says they wear: the router's size word, else "us 9", "uk 8", "size 42", "32"…
    fn customer_size(&self, text: &str, letter_size: Option<&str>) -> Option<usize> {
        if let Some(i) = letter_size.and_then(|l| self.find(l)) {
            return Some(i);
        }
        let lower = text.to_lowercase();
        let tokens: Vec<&str> = lower
            .split(|c: char| !(c.is_alphanumeric() || c == '.'))
            .map(|t| t.trim_matches('.'))
            .filter(|t| !t.is_empty())
            .collect();
        for (i, token) in tokens.iter().enumerate() {
            let next = tokens.get(i + 1).copied().unwrap_or("");
            let found = match *token {
                "us" | "eu" | "uk" if next.parse::<f64>().is_ok() => self.find(&format!("{token}{next}")),
                _ if token.parse::<f64>().is_ok()
                    || token.strip_prefix('w').is_some_and(|n| n.parse::<u32>().is_ok()) =>
                {
                    self.find(token)
                }
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// A measurement of an item in centimetres, when it was measured (a number, or a number in a string).
pub fn measurement(item: &items::Model, name: &str) -> Option<f64> {
    match item.measurements.get(name)? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|cm| cm.is_finite() && *cm > 0.0)
}

/// `pit_to_pit` → "pit to pit".
pub fn readable(name: &str) -> String {
    name.replace('_', " ")
}

/// 52 → "52", 26.5 → "26.5".
pub fn trim_number(value: f64) -> String {
    if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn chart() -> SizeChart {
        SizeChart::parse(BUILT_IN, "built-in").expect("the shipped chart is valid")
    }

    fn item(category: &str, tag: Option<&str>, measurements: serde_json::Value) -> items::Model {
        items::Model {
            id: 1,
            sku: "X-1".into(),
            title: "Test piece".into(),
            brand: None,
            category: category.into(),
            tag_size: tag.map(str::to_owned),
            fits_like_size: None,
            measurements,
            condition: "great".into(),
            flaws: None,
            price_minor: 1000,
            currency: "USD".into(),
            status: items::ItemStatus::Available,
            image_url: None,
            tiktok_media_id: None,
            dropped_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn size(label: &str) -> FitsLike {
        FitsLike::Size(label.into())
    }

    fn length(cm: f64, name: Option<&str>) -> Length {
        Length { measured: Measured { name: "inseam".into(), cm }, name: name.map(str::to_owned) }
    }

    fn fit(item: &items::Model, text: &str, letter: Option<&str>) -> Assessment {
        chart().assess(item, text, letter).expect("a chart covers the item")
    }

    #[test]
    fn tops_edges_fall_on_the_upper_size() {
        let chart = chart();
        let tops = &chart.tops;
        // M is 51 ≤ p2p < 55: 51 is M, 54.9 is still M, 55 is L.
        assert_eq!(tops.place(51.0), Place::Size(2));
        assert_eq!(tops.place(54.9), Place::Size(2));
        assert_eq!(tops.place(55.0), Place::Size(3));
        assert_eq!(tops.place(43.9), Place::Below);
        assert_eq!(tops.place(44.0), Place::Size(0));
        assert_eq!(tops.place(68.0), Place::Above);
        assert_eq!(tops.place(67.9), Place::Size(5));
    }

    #[test]
    fn sizes_are_found_by_their_aliases_in_any_case_and_spacing() {
        let chart = chart();
        assert_eq!(chart.tops.find("Medium"), Some(2));
        assert_eq!(chart.tops.find("x small"), Some(0));
        assert_eq!(chart.bottoms.find("2XL"), Some(5));
        assert_eq!(chart.bottoms.find("W32 L30"), Some(3), "the first part that names a size");
        assert_eq!(chart.shoes.find("medium"), None);
    }

    #[test]
    fn a_tagged_l_measuring_52_fits_like_an_m() {
        let jacket = item("jacket", Some("L"), json!({"pit_to_pit": 52, "length": 70}));
        let a = fit(&jacket, "im usually a M, will it fit?", Some("M"));
        assert_eq!(a.fits_like, Some(size("M")));
        assert!(!a.true_to_size);
        assert_eq!(a.measured, Some(52.0));
        assert_eq!(a.customer, Some(("M".into(), Some(Verdict::Fits))));
        assert_eq!(fit(&jacket, "I'm a large", Some("L")).customer, Some(("L".into(), Some(Verdict::Snug))));
        assert_eq!(fit(&jacket, "I'm a small", Some("S")).customer, Some(("S".into(), Some(Verdict::Roomy))));
        assert_eq!(fit(&jacket, "xs", Some("XS")).customer, Some(("XS".into(), Some(Verdict::TooBig))));
        assert_eq!(fit(&jacket, "xxl", Some("XXL")).customer, Some(("XXL".into(), Some(Verdict::TooSmall))));
        let true_m = item("tee", Some("M"), json!({"pit_to_pit": 51}));
        assert!(fit(&true_m, "", None).true_to_size, "51 cm is the smallest M");
    }

    #[test]
    fn beyond_the_chart_is_smaller_or_bigger_than_its_ends() {
        let tiny = item("tee", Some("S"), json!({"pit_to_pit": 40}));
        let a = fit(&tiny, "I'm an XS", Some("XS"));
        assert_eq!(a.fits_like, Some(FitsLike::SmallerThan("XS".into())));
        assert_eq!(a.customer, Some(("XS".into(), Some(Verdict::Snug))));
        let huge = item("hoodie", Some("XXL"), json!({"pit_to_pit": 70}));
        assert_eq!(fit(&huge, "", None).fits_like, Some(FitsLike::BiggerThan("XXL".into())));
        assert_eq!(chart().computed_fits_like(&huge), None, "no size of the chart to store");
        assert_eq!(fit(&huge, "m", Some("M")).customer, Some(("M".into(), Some(Verdict::TooBig))));
    }

    #[test]
    fn bottoms_go_by_waist_and_say_the_length() {
        let jeans = item("denim", Some("W32 L30"), json!({"waist": 40, "inseam": 81}));
        let a = fit(&jeans, "I'm a 32 waist", None);
        assert_eq!(a.fits_like, Some(size("L")), "40 cm flat is the smallest L");
        assert!(a.true_to_size, "W32 is an alias of L");
        assert_eq!(a.length, Some(length(81.0, Some("regular"))));
        assert_eq!(a.customer, Some(("L".into(), Some(Verdict::Fits))));
        let edge = item("denim", None, json!({"waist": 39.9, "inseam": 84}));
        let a = fit(&edge, "usually a 33", None);
        assert_eq!(a.fits_like, Some(size("M")));
        assert_eq!(a.length, Some(length(84.0, Some("long"))), "84 is where long starts");
        assert_eq!(a.customer, Some(("L".into(), Some(Verdict::Snug))));
    }

    #[test]
    fn shoes_go_by_insole_in_us_eu_and_uk() {
        let dunks = item("sneakers", Some("US 9"), json!({"insole": 27.0}));
        let a = fit(&dunks, "", None);
        assert_eq!(a.fits_like, Some(size("US 9.5 (EU 43, UK 8.5)")), "27.0 cm is where 9.5 starts");
        assert!(!a.true_to_size);
        assert_eq!(fit(&dunks, "I'm a 9.5", None).customer.unwrap().1, Some(Verdict::Fits));
        assert_eq!(fit(&dunks, "eu 43", None).customer.unwrap().1, Some(Verdict::Fits));
        assert_eq!(fit(&dunks, "I wear UK 8", None).customer.unwrap().1, Some(Verdict::Roomy));
        assert_eq!(fit(&dunks, "size 42.5", None).customer.unwrap().1, Some(Verdict::Roomy), "42.5 is EU");
        assert_eq!(fit(&dunks, "us 11", None).customer.unwrap().1, Some(Verdict::TooSmall));
        let small = item("sneakers", Some("7"), json!({"insole": 24.5}));
        assert_eq!(fit(&small, "", None).fits_like, Some(size("US 7 (EU 40, UK 6)")));
        assert!(fit(&small, "", None).true_to_size);
    }

    #[test]
    fn a_missing_measurement_is_named_and_gives_no_verdict() {
        let unmeasured = item("jacket", Some("L"), json!({"length": 70}));
        let a = fit(&unmeasured, "I'm a M", Some("M"));
        assert_eq!(a.missing, vec!["pit to pit"]);
        assert_eq!(a.fits_like, None);
        assert_eq!(a.customer, Some(("M".into(), None)), "the size is understood, the verdict is not guessed");
        let no_inseam = item("denim", Some("30"), json!({"waist": 38}));
        let a = fit(&no_inseam, "", None);
        assert_eq!(a.fits_like, Some(size("M")));
        assert_eq!(a.missing, vec!["inseam"]);
        let no_insole = item("sneakers", Some("US 9"), json!({}));
        assert_eq!(fit(&no_insole, "im a 9", None).missing, vec!["insole"]);
    }

    #[test]
    fn staff_fits_like_wins_over_the_computed_size() {
        let mut tee = item("tee", Some("L"), json!({"pit_to_pit": 56}));
        tee.fits_like_size = Some("M".into());
        assert_eq!(fit(&tee, "", None).fits_like, Some(size("M")));
        assert_eq!(chart().computed_fits_like(&tee).as_deref(), Some("L"));
        assert!(chart().assess(&item("bag", None, json!({})), "", None).is_none(), "no chart for bags");
    }

    #[test]
    fn a_broken_chart_names_the_field() {
        let text = BUILT_IN.replace("size = \"L\", min = 55, max = 59", "size = \"L\", min = 56, max = 59");
        let problems = SizeChart::parse(&text, "config/size_chart.toml").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "tops.sizes[3].min");
        assert!(problems[0].message.contains("(55)"), "{}", problems[0]);
        let unknown =
            SizeChart::parse(&BUILT_IN.replace("measurement = \"insole\"", "measure = \"insole\""), "f").unwrap_err();
        assert!(unknown[0].to_string().contains("unknown field `measure`"), "{}", unknown[0]);
    }
}
