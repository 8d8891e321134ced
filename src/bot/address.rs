//! Reading a shipping name and address from what a customer typed at checkout ("Kim Lee, 12 Main St Apt
//! 4, Austin, TX 78701"), in one message or a few, into the fields a label needs.

use serde::{Deserialize, Serialize};

use crate::shop::orders::Address;

/// The US states, DC and territories by their postal code: a two-letter word before a ZIP code.
const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
    "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR",
    "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR", "GU", "VI", "AS", "MP",
];

/// Words that start the second address line.
const LINE2_WORDS: &[&str] = &["apt", "apartment", "unit", "suite", "ste", "#", "fl", "floor", "room", "rm", "bldg"];

/// An address being collected: every field may still be missing. Kept in the conversation's state
/// between messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub line1: Option<String>,
    #[serde(default)]
    pub line2: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default)]
    pub country: Option<String>,
}

/// A field a label needs, named as the customer is asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Street,
    City,
    State,
    Zip,
}

impl Draft {
    /// Reads a message. `country_of` names the country a word means ("canada" → "CA"). Nothing found
    /// leaves every field empty.
    pub fn parse(text: &str, country_of: impl Fn(&str) -> Option<String>) -> Draft {
        let mut parts: Vec<String> = text
            .split([',', '\n', ';'])
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| !p.is_empty())
            .collect();
        let mut draft = Draft::default();
        // A country, as the last part or the last word(s) of it.
        if let Some(code) = parts.last().and_then(|last| country_of(last)) {
            draft.country = Some(code);
            parts.pop();
        }
        let street_at = parts.iter().position(|p| p.chars().next().is_some_and(|c| c.is_ascii_digit()));
        let Some(street_at) = street_at else {
            // No street: a name alone ("Kim Lee"), when it looks like one.
            if let [only] = parts.as_slice()
                && looks_like_name(only)
            {
                draft.name = Some(only.clone());
            }
            return draft;
        };
        let before: Vec<&String> = parts[..street_at].iter().collect();
        if let Some(name) = before.iter().rev().find(|p| looks_like_name(p)) {
            draft.name = Some((*name).clone());
        }
        let (line1, mut line2) = split_line2(&parts[street_at]);
        draft.line1 = Some(line1);
        let mut rest: Vec<String> = parts[street_at + 1..].to_vec();
        if let Some(first) = rest.first()
            && LINE2_WORDS.iter().any(|w| first.to_lowercase().starts_with(w))
        {
            line2 = Some(rest.remove(0));
        }
        draft.line2 = line2;
        // The last part holds the region and postal code ("TX 78701"), maybe the city before them.
        if let Some(last) = rest.pop() {
            let mut words: Vec<&str> = last.split_whitespace().collect();
            // A Canadian or British postcode is two words ("M5H 2N2"); a ZIP one ("78701", "78701-1234").
            let n = words.len();
            if n >= 2 && is_postcode_half(words[n - 2]) && is_postcode_half(words[n - 1]) && !is_zip(words[n - 1]) {
                draft.postal_code = Some(format!("{} {}", words[n - 2], words[n - 1]).to_uppercase());
                words.truncate(n - 2);
            } else if words.last().is_some_and(|w| is_zip(w)) {
                draft.postal_code = words.pop().map(str::to_owned);
            }
            if let Some(region) = words.last().filter(|w| w.len() == 2 && w.chars().all(|c| c.is_ascii_alphabetic())) {
                draft.region = Some(region.to_uppercase());
                words.pop();
            }
            if !words.is_empty() {
                draft.city = Some(words.join(" "));
            } else if let Some(city) = rest.pop() {
                draft.city = Some(city);
            }
        }
        if draft.country.is_none() {
            let us_zip = draft.postal_code.as_deref().is_some_and(is_zip);
            let us_state = draft.region.as_deref().is_some_and(|r| US_STATES.contains(&r));
            if us_zip || us_state {
                draft.country = Some("US".into());
            }
        }
        draft
    }

    /// `self`, with the fields it lacks taken from `earlier` (a name sent first, the address after).
    pub fn or(self, earlier: &Draft) -> Draft {
        Draft {
            name: self.name.or_else(|| earlier.name.clone()),
            line1: self.line1.or_else(|| earlier.line1.clone()),
            line2: self.line2.or_else(|| earlier.line2.clone()),
            city: self.city.or_else(|| earlier.city.clone()),
            region: self.region.or_else(|| earlier.region.clone()),
            postal_code: self.postal_code.or_else(|| earlier.postal_code.clone()),
            country: self.country.or_else(|| earlier.country.clone()),
        }
    }

    /// Whether the message gave anything at all.
    pub fn is_empty(&self) -> bool {
        *self == Draft::default()
    }

    /// What a label still needs, in the order the customer is asked for it. A US address needs its
    /// state and ZIP code; elsewhere the postcode (a region where the country has them is optional).
    pub fn missing(&self) -> Vec<Field> {
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|v| v.trim().is_empty());
        let mut missing = Vec::new();
        if blank(&self.name) {
            missing.push(Field::Name);
        }
        if blank(&self.line1) {
            missing.push(Field::Street);
        }
        if blank(&self.city) {
            missing.push(Field::City);
        }
        let us = self.country.as_deref().is_none_or(|c| c == "US");
        if us && blank(&self.region) {
            missing.push(Field::State);
        }
        if blank(&self.postal_code) {
            missing.push(Field::Zip);
        }
        missing
    }

    /// The complete address; `None` while something is missing.
    pub fn complete(&self) -> Option<Address> {
        if !self.missing().is_empty() {
            return None;
        }
        Some(Address {
            name: self.name.clone()?,
            line1: self.line1.clone()?,
            line2: self.line2.clone(),
            city: self.city.clone()?,
            region: self.region.clone(),
            postal_code: self.postal_code.clone()?,
            country: self.country.clone().unwrap_or_else(|| "US".into()),
        })
    }
}

/// An address as shown back to the customer, one line per label line.
pub fn say(address: &Address) -> String {
    let mut lines = vec![address.name.clone(), address.line1.clone()];
    if let Some(line2) = address.line2.as_deref().filter(|l| !l.is_empty()) {
        lines.push(line2.to_owned());
    }
    let region = address.region.as_deref().map(|r| format!(", {r}")).unwrap_or_default();
    lines.push(format!("{}{region} {}", address.city, address.postal_code));
    lines.push(address.country.clone());
    lines.join("\n")
}

/// "12 Main St Apt 4" → ("12 Main St", Some("Apt 4")).
fn split_line2(street: &str) -> (String, Option<String>) {
    let words: Vec<&str> = street.split_whitespace().collect();
    match words.iter().skip(1).position(|w| {
        let lower = w.to_lowercase();
        LINE2_WORDS.contains(&lower.as_str()) || (lower.starts_with('#') && lower.len() > 1)
    }) {
        Some(i) => (words[..=i].join(" "), Some(words[i + 1..].join(" "))),
        None => (street.to_owned(), None),
    }
}

/// Two to five words of letters (a person's name), not a question.
fn looks_like_name(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    (1..=5).contains(&words.len())
        && words.iter().all(|w| w.chars().all(|c| c.is_alphabetic() || matches!(c, '-' | '\'' | '.')))
        && !text.contains('?')
}

fn is_zip(word: &str) -> bool {
    let (five, four) = word.split_once('-').unwrap_or((word, ""));
    five.len() == 5
        && five.chars().all(|c| c.is_ascii_digit())
        && (four.is_empty() || (four.len() == 4 && four.chars().all(|c| c.is_ascii_digit())))
}

fn is_postcode_half(word: &str) -> bool {
    (2..=4).contains(&word.len())
        && word.chars().all(|c| c.is_ascii_alphanumeric())
        && word.chars().any(|c| c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(word: &str) -> Option<String> {
        match word.to_lowercase().as_str() {
            "canada" => Some("CA".into()),
            "usa" | "us" => Some("US".into()),
            _ => None,
        }
    }

    #[test]
    fn a_us_address_in_one_line() {
        let d = Draft::parse("Kim Lee, 12 Main St Apt 4, Austin, TX 78701", country);
        assert_eq!(d.name.as_deref(), Some("Kim Lee"));
        assert_eq!((d.line1.as_deref(), d.line2.as_deref()), (Some("12 Main St"), Some("Apt 4")));
        assert_eq!((d.city.as_deref(), d.region.as_deref()), (Some("Austin"), Some("TX")));
        assert_eq!((d.postal_code.as_deref(), d.country.as_deref()), (Some("78701"), Some("US")));
        assert!(d.missing().is_empty());
    }

    #[test]
    fn city_state_zip_without_commas_and_a_name_sent_first() {
        let name = Draft::parse("Kim Lee", country);
        let d = Draft::parse("12 Main St\nAustin TX 78701", country).or(&name);
        assert_eq!(d.complete().unwrap().city, "Austin");
        assert_eq!(d.name.as_deref(), Some("Kim Lee"));
    }

    #[test]
    fn a_missing_zip_is_named_and_a_canadian_address_is_canadian() {
        assert_eq!(Draft::parse("Kim Lee, 12 Main St, Austin TX", country).missing(), [Field::Zip]);
        let ca = Draft::parse("Kim Lee, 10 Queen St W, Toronto, ON M5H 2N2, Canada", country);
        assert_eq!((ca.country.as_deref(), ca.postal_code.as_deref()), (Some("CA"), Some("M5H 2N2")));
        assert!(ca.missing().is_empty());
        assert!(Draft::parse("how much is shipping?", country).is_empty());
    }
}
