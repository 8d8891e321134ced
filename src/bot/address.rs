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

/// Words that end a street's name: in an address typed without commas ("88 elm st dallas tx 75201") the
/// city starts after the last of them (and after the second line, "apt 3b", if one follows).
const STREET_ENDS: &[&str] = &[
    "st",
    "street",
    "ave",
    "av",
    "avenue",
    "rd",
    "road",
    "blvd",
    "boulevard",
    "dr",
    "drive",
    "ln",
    "lane",
    "way",
    "ct",
    "court",
    "pl",
    "place",
    "pkwy",
    "parkway",
    "hwy",
    "highway",
    "ter",
    "terrace",
    "cir",
    "circle",
    "sq",
    "square",
    "trl",
    "trail",
    "loop",
    "row",
    "walk",
    "pike",
];

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
        // A country, as the last part or the last word(s) of it ("… Montreal QC H2X 3K8 Canada").
        if let Some(last) = parts.pop() {
            let words: Vec<&str> = last.split_whitespace().collect();
            // A state's code at the end is the state ("Springfield IL"), never the country it also names.
            let found = (1..=words.len().min(3))
                .rev()
                .filter(|&n| {
                    n > 1 || n == words.len() || !US_STATES.contains(&words[words.len() - 1].to_uppercase().as_str())
                })
                .find_map(|n| country_of(&words[words.len() - n..].join(" ")).map(|code| (n, code)));
            match found {
                Some((n, code)) => {
                    draft.country = Some(code);
                    let kept = words[..words.len() - n].join(" ");
                    if !kept.is_empty() {
                        parts.push(kept);
                    }
                }
                None => parts.push(last),
            }
        }
        let mut parts: Vec<String> = parts.iter().flat_map(|p| split_name_from_street(p)).collect();
        let street_at = parts.iter().position(|p| p.chars().next().is_some_and(|c| c.is_ascii_digit()));
        let Some(street_at) = street_at else {
            // No street: the city, state and ZIP code sent after the street ("Austin, TX 78701"), or a
            // name alone ("Kim Lee") when it looks like one.
            if parts.last().is_some_and(|last| ends_with_postcode(last)) {
                draft.city_region_postcode(&mut parts);
                draft.set_us_when_it_is();
            } else if let [only] = parts.as_slice()
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
        let mut rest: Vec<String> = parts[street_at + 1..].to_vec();
        // Typed without commas, the street's part may hold the whole address: "221 oak ave apt 3b columbus
        // oh 43215" is the street, its second line, then the city, state and ZIP code.
        let mut street = parts[street_at].clone();
        if rest.is_empty() && ends_with_postcode(&street) {
            match split_street_from_place(&street) {
                Some((only_street, place)) => {
                    street = only_street;
                    rest.push(place);
                }
                // No word tells the street from the city: the postal code and region are taken, the city
                // is asked for.
                None => {
                    let mut place = vec![street.clone()];
                    draft.city_region_postcode(&mut place);
                    street = draft.city.take().unwrap_or_default();
                }
            }
        }
        let (line1, mut line2) = split_line2(&street);
        draft.line1 = Some(line1);
        if let Some(first) = rest.first()
            && LINE2_WORDS.iter().any(|w| first.to_lowercase().starts_with(w))
        {
            line2 = Some(rest.remove(0));
        }
        draft.line2 = line2;
        draft.city_region_postcode(&mut rest);
        draft.set_us_when_it_is();
        draft
    }

    /// The city, region and postal code from the last of `parts` ("TX 78701", "Austin TX 78701"), the city
    /// from the part before when the last holds none.
    fn city_region_postcode(&mut self, rest: &mut Vec<String>) {
        // The last part holds the region and postal code ("TX 78701"), maybe the city before them.
        if let Some(last) = rest.pop() {
            let mut words: Vec<&str> = last.split_whitespace().collect();
            // A Canadian or British postcode is two words ("M5H 2N2"); a ZIP one ("78701", "78701-1234").
            let n = words.len();
            if n >= 2 && is_postcode_half(words[n - 2]) && is_postcode_half(words[n - 1]) && !is_zip(words[n - 1]) {
                self.postal_code = Some(format!("{} {}", words[n - 2], words[n - 1]).to_uppercase());
                words.truncate(n - 2);
            } else if words.last().is_some_and(|w| is_zip(w)) {
                self.postal_code = words.pop().map(str::to_owned);
            }
            if let Some(region) = words.last().filter(|w| w.len() == 2 && w.chars().all(|c| c.is_ascii_alphabetic())) {
                self.region = Some(region.to_uppercase());
                words.pop();
            }
            if !words.is_empty() {
                self.city = Some(words.join(" "));
            } else if let Some(city) = rest.pop() {
                self.city = Some(city);
            }
        }
    }

    /// A US ZIP code or state without a country named makes the address a US one.
    fn set_us_when_it_is(&mut self) {
        if self.country.is_none() {
            let us_zip = self.postal_code.as_deref().is_some_and(is_zip);
            let us_state = self.region.as_deref().is_some_and(|r| US_STATES.contains(&r));
            if us_zip || us_state {
                self.country = Some("US".into());
            }
        }
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

/// "bo park 88 elm st" → ["bo park", "88 elm st"]: a name typed before the house number without a comma.
/// Only when letters come first and a word follows the number ("TX 78701" and "Apt 4" stay whole).
fn split_name_from_street(part: &str) -> Vec<String> {
    let words: Vec<&str> = part.split_whitespace().collect();
    let is_number = |w: &str| w.chars().next().is_some_and(|c| c.is_ascii_digit());
    let Some(at) = words.iter().position(|w| is_number(w)) else { return vec![part.to_owned()] };
    let name = words[..at].join(" ");
    let starts_line2 = words.first().is_some_and(|w| LINE2_WORDS.contains(&w.to_lowercase().as_str()));
    // A street follows the number: a word that ends a street's name, or a whole address to its postal code
    // ("88 rue Saint-Denis Montreal QC H2X 3K8"); "i want 2 of them" is no address.
    let street_follows = words.iter().skip(at + 2).any(|w| is_street_end(w)) || ends_with_postcode(part);
    if at == 0 || at + 1 >= words.len() || !street_follows || starts_line2 || !looks_like_name(&name) {
        return vec![part.to_owned()];
    }
    vec![name, words[at..].join(" ")]
}

/// "221 oak ave apt 3b columbus oh 43215" → ("221 oak ave apt 3b", "columbus oh 43215"): the city starts after
/// the last word that ends a street name, and after a second line right behind it. `None` when no such
/// word is there to tell the street from the city.
fn split_street_from_place(street: &str) -> Option<(String, String)> {
    let words: Vec<&str> = street.split_whitespace().collect();
    let end = words.iter().skip(1).rposition(|w| is_street_end(w))? + 1;
    let mut city_at = end + 1;
    if words.get(city_at).is_some_and(|w| LINE2_WORDS.contains(&w.to_lowercase().as_str())) {
        city_at += 2;
    } else if words.get(city_at).is_some_and(|w| w.starts_with('#') && w.len() > 1) {
        city_at += 1;
    }
    let place = words.get(city_at..)?.join(" ");
    // The place must hold more than the postal code: a city or a region before it.
    (place.split_whitespace().count() >= 2).then(|| (words[..city_at].join(" "), place))
}

fn is_street_end(word: &str) -> bool {
    STREET_ENDS.contains(&word.trim_end_matches('.').to_lowercase().as_str())
}

/// Whether a part ends with a postal code: a ZIP ("78701") or a two-word postcode ("H2X 3K8").
fn ends_with_postcode(part: &str) -> bool {
    let words: Vec<&str> = part.split_whitespace().collect();
    let n = words.len();
    words.last().is_some_and(|w| is_zip(w))
        || (n >= 2 && is_postcode_half(words[n - 2]) && is_postcode_half(words[n - 1]))
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

    #[test]
    fn the_city_state_and_zip_sent_after_the_street_complete_the_address() {
        let earlier = Draft::parse("Kim Lee", country).or(&Draft::default());
        let earlier = Draft::parse("12 Main St Apt 4", country).or(&earlier);
        assert_eq!(earlier.missing(), [Field::City, Field::State, Field::Zip]);
        for place in ["Austin, TX 78701", "austin tx 78701", "Austin,TX 78701"] {
            let d = Draft::parse(place, country).or(&earlier);
            assert!(d.missing().is_empty(), "{place}: {d:?}");
            assert_eq!(d.city.as_deref().map(str::to_lowercase).as_deref(), Some("austin"), "{place}");
            assert_eq!((d.region.as_deref(), d.postal_code.as_deref()), (Some("TX"), Some("78701")), "{place}");
            assert_eq!(d.line1.as_deref(), Some("12 Main St"), "{place}");
        }
    }

    #[test]
    fn an_address_typed_without_commas_is_read_whole() {
        let d = Draft::parse("bo park 88 elm st", country);
        assert_eq!((d.name.as_deref(), d.line1.as_deref()), (Some("bo park"), Some("88 elm st")));
        let d = Draft::parse("dallas tx 75201", country).or(&d);
        assert!(d.missing().is_empty(), "{d:?}");
        let d = Draft::parse("221 oak ave apt 3b columbus oh 43215", country);
        assert_eq!((d.line1.as_deref(), d.line2.as_deref()), (Some("221 oak ave"), Some("apt 3b")));
        assert_eq!((d.city.as_deref(), d.region.as_deref()), (Some("columbus"), Some("OH")));
        assert_eq!(d.postal_code.as_deref(), Some("43215"));
        let d = Draft::parse("taylor brooks 221 oak ave columbus oh 43215", country);
        assert_eq!((d.name.as_deref(), d.line1.as_deref()), (Some("taylor brooks"), Some("221 oak ave")));
        assert!(d.missing().is_empty(), "{d:?}");
        let d = Draft::parse("maria lopez 455 e olive st san antonio tx 78212", country);
        assert_eq!(d.city.as_deref(), Some("san antonio"));
        assert!(d.missing().is_empty(), "{d:?}");
        let ca = Draft::parse("Jean Tremblay 88 rue Saint-Denis Montreal QC H2X 3K8 Canada", country);
        assert_eq!(
            (ca.name.as_deref(), ca.line1.as_deref()),
            (Some("Jean Tremblay"), Some("88 rue Saint-Denis Montreal"))
        );
        assert_eq!((ca.region.as_deref(), ca.postal_code.as_deref()), (Some("QC"), Some("H2X 3K8")));
        assert_eq!(ca.missing(), [Field::City]);
        let ca = Draft::parse("Jean Tremblay 88 Queen St W Montreal QC H2X 3K8 Canada", country);
        assert_eq!((ca.country.as_deref(), ca.postal_code.as_deref()), (Some("CA"), Some("H2X 3K8")));
        assert_eq!((ca.name.as_deref(), ca.region.as_deref()), (Some("Jean Tremblay"), Some("QC")));
        // What is not an address stays empty, and a second line or a state code is never taken for a name.
        assert!(Draft::parse("i want 2 of them", country).name.is_none());
        assert_eq!(Draft::parse("Apt 4", country).name, None);
        assert_eq!(Draft::parse("TX 78701", country).name, None);
        let ca = |w: &str| if w == "CA" { Some("CA".to_owned()) } else { country(w) };
        assert_eq!(Draft::parse("Kim Lee 12 Main St Los Angeles CA", ca).country, None);
    }
}
