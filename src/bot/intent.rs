//! What a customer wants: the intents, the numbered-menu reader and the keyword router, which reads
//! the keyword lists of `config/intents.toml` and `config/faq.toml`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::config::{Problem, parse_toml, read_or_built_in};

pub const INTENTS_FILE: &str = "intents.toml";
pub const FAQ_FILE: &str = "faq.toml";
const BUILT_IN_INTENTS: &str = include_str!("../../config/intents.toml");
const BUILT_IN_FAQ: &str = include_str!("../../config/faq.toml");

/// Everything the bot can be asked, as a fixed set (the LLM may only pick from these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    OrderStatus,
    NewDrops,
    Human,
    Availability,
    Sizing,
    Reserve,
    CancelHold,
    /// Turn the customer's holds into an order.
    Checkout,
    /// The next page of the last list.
    More,
    /// A frequently asked question, by its topic in `faq.toml`.
    Faq(String),
    Greeting,
    Thanks,
    OptOut,
    Unknown,
}

impl Intent {
    /// The intent behind menu option `n` (1. Order status, 2. New drops, 3. Talk to a human).
    pub fn from_menu(n: u32) -> Option<Intent> {
        match n {
            1 => Some(Intent::OrderStatus),
            2 => Some(Intent::NewDrops),
            3 => Some(Intent::Human),
            _ => None,
        }
    }

    /// The name used in the routing table, the config files and the LLM schema.
    pub fn name(&self) -> String {
        match self {
            Intent::Faq(topic) => format!("faq:{topic}"),
            other => serde_json::to_value(other).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        }
    }
}

/// What the message names besides the intent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entities {
    pub sku: Option<String>,
    pub size: Option<String>,
    pub category: Option<String>,
    pub order_number: Option<String>,
    /// "the second one", "2nd": a position in the last list the bot showed.
    pub item_position: Option<u32>,
}

/// Lower case, accents and apostrophes removed, anything else that is not a letter or digit a space.
pub fn normalize(text: &str) -> Vec<String> {
    let folded: String = text
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .filter(|c| !matches!(c, '\'' | '’' | '`'))
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    folded.split_whitespace().map(str::to_owned).collect()
}

/// A keyword: one or more normalized words that must appear together, in order.
#[derive(Debug, Clone)]
struct Phrase(Vec<String>);

impl Phrase {
    fn new(text: &str) -> Self {
        Phrase(normalize(text))
    }

    /// Whole words, in order; a word of five letters or more may carry one typo.
    fn found_in(&self, words: &[String]) -> bool {
        if self.0.is_empty() || self.0.len() > words.len() {
            return false;
        }
        words.windows(self.0.len()).any(|window| window.iter().zip(&self.0).all(|(w, k)| word_matches(w, k)))
    }
}

fn word_matches(word: &str, keyword: &str) -> bool {
    if word == keyword {
        return true;
    }
    // One edit changes the length by at most one: most pairs are ruled out before the (allocating)
    // distance is computed, which keeps routing cheap on the hot path.
    let (w, k) = (word.chars().count(), keyword.chars().count());
    k >= 5 && w >= 4 && w.abs_diff(k) <= 1 && strsim::damerau_levenshtein(word, keyword) <= 1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keywords {
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    exact: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentsFile {
    opt_out: Keywords,
    human: Keywords,
    cancel_hold: Keywords,
    checkout: Keywords,
    more: Keywords,
    reserve: Keywords,
    order_status: Keywords,
    sizing: Keywords,
    availability: Keywords,
    new_drops: Keywords,
    thanks: Keywords,
    greeting: Keywords,
    search: SearchWords,
    numbers: NumberWords,
    sizes: BTreeMap<String, Vec<String>>,
    categories: BTreeMap<String, Vec<String>>,
}

/// How customers write numbers besides digits (`[numbers]` in `intents.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberWords {
    /// Words before a menu number ("option 2").
    before: Vec<String>,
    /// Menu numbers written as words ("two").
    words: BTreeMap<String, u32>,
    /// Positions in a list ("the second one").
    ordinals: BTreeMap<String, u32>,
}

/// How a message that describes a piece is read (`[search]` in `intents.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchWords {
    looking: Vec<String>,
    newest: Vec<String>,
    filler: Vec<String>,
}

/// One FAQ topic: when it applies and what the bot answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqEntry {
    pub keywords: Vec<String>,
    pub answer: String,
}

/// The keyword router and the FAQ answers, read from the config folder.
#[derive(Debug, Clone)]
pub struct KeywordRouter {
    opt_out: Vec<Vec<String>>,
    /// Whole messages that ask for the next page of a list ("more", "next").
    more: Vec<Vec<String>>,
    /// In priority order: the first intent with a matching phrase wins.
    intents: Vec<(Intent, Vec<Phrase>)>,
    categories: Vec<(String, Vec<Phrase>)>,
    faq: BTreeMap<String, FaqEntry>,
    /// Words, each a phrase of normalized words, that make a message a search through the stock.
    looking: Vec<Vec<String>>,
    /// Phrases, normalized and joined by spaces, that mean the newest drop.
    newest: Vec<String>,
    /// Normalized words that never name a piece.
    filler: Vec<String>,
    /// Normalized words written before a menu number.
    number_prefixes: Vec<String>,
    /// Menu numbers as normalized words.
    number_words: BTreeMap<String, u32>,
    /// List positions as normalized words.
    ordinals: BTreeMap<String, u32>,
    /// Size words, normalized, and the size each names.
    size_words: BTreeMap<String, String>,
}

impl KeywordRouter {
    /// Reads `intents.toml` and `faq.toml` from `config_dir` (the built-in files when absent).
    pub fn load(config_dir: &Path) -> Result<Self, Vec<Problem>> {
        let (intents_text, intents_source) = read_or_built_in(config_dir, INTENTS_FILE, BUILT_IN_INTENTS)?;
        let (faq_text, faq_source) = read_or_built_in(config_dir, FAQ_FILE, BUILT_IN_FAQ)?;
        let intents: Result<IntentsFile, _> = parse_toml(&intents_text, &intents_source);
        let faq: Result<BTreeMap<String, FaqEntry>, _> = parse_toml(&faq_text, &faq_source);
        let (intents, faq) = match (intents, faq) {
            (Ok(i), Ok(f)) => (i, f),
            (i, f) => return Err(i.err().into_iter().chain(f.err()).flatten().collect()),
        };
        let mut problems = Vec::new();
        for (topic, entry) in &faq {
            if entry.keywords.is_empty() {
                problems.push(Problem::new(&faq_source, format!("{topic}.keywords"), "must list at least one keyword"));
            }
            if entry.answer.trim().is_empty() {
                problems.push(Problem::new(&faq_source, format!("{topic}.answer"), "must not be empty"));
            }
        }
        let mut named_by: BTreeMap<String, &str> = BTreeMap::new();
        for (size, words) in &intents.sizes {
            for word in words {
                if let Some(other) = named_by.insert(normalize(word).join(" "), size) {
                    let message = format!("{word:?} already names {other}: a word names one size");
                    problems.push(Problem::new(&intents_source, format!("sizes.{size}"), message));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let phrases = |k: &Keywords| k.keywords.iter().map(|w| Phrase::new(w)).collect::<Vec<_>>();
        // Priority order: shop intents first, then FAQ, thanks and greeting ("hi, is the jacket still
        // available?" is about the jacket).
        let mut ordered = vec![
            (Intent::Human, phrases(&intents.human)),
            (Intent::CancelHold, phrases(&intents.cancel_hold)),
            (Intent::Checkout, phrases(&intents.checkout)),
            (Intent::Reserve, phrases(&intents.reserve)),
            (Intent::OrderStatus, phrases(&intents.order_status)),
            (Intent::Sizing, phrases(&intents.sizing)),
            (Intent::Availability, phrases(&intents.availability)),
            (Intent::NewDrops, phrases(&intents.new_drops)),
        ];
        for (topic, entry) in &faq {
            ordered.push((Intent::Faq(topic.clone()), entry.keywords.iter().map(|w| Phrase::new(w)).collect()));
        }
        ordered.push((Intent::Thanks, phrases(&intents.thanks)));
        ordered.push((Intent::Greeting, phrases(&intents.greeting)));
        Ok(Self {
            opt_out: intents.opt_out.exact.iter().chain(&intents.opt_out.keywords).map(|w| normalize(w)).collect(),
            more: intents.more.exact.iter().chain(&intents.more.keywords).map(|w| normalize(w)).collect(),
            intents: ordered,
            categories: intents
                .categories
                .iter()
                .map(|(category, words)| (category.clone(), words.iter().map(|w| Phrase::new(w)).collect()))
                .collect(),
            faq,
            looking: intents.search.looking.iter().map(|w| normalize(w)).collect(),
            newest: intents.search.newest.iter().map(|p| normalize(p).join(" ")).collect(),
            filler: intents.search.filler.iter().flat_map(|w| normalize(w)).collect(),
            number_prefixes: intents.numbers.before.iter().flat_map(|w| normalize(w)).collect(),
            number_words: normalized_keys(intents.numbers.words),
            ordinals: normalized_keys(intents.numbers.ordinals),
            size_words: intents
                .sizes
                .into_iter()
                .flat_map(|(size, words)| words.into_iter().map(move |word| (normalize(&word).join(" "), size.clone())))
                .collect(),
        })
    }

    /// A menu choice written as "2", "2.", "#2", "2)", "option 2", "two" or the keycap emoji "2️⃣".
    pub fn menu_choice(&self, text: &str) -> Option<u32> {
        let trimmed = text.trim().trim_end_matches(['.', ')', '!']).trim();
        let keycap: String = trimmed.chars().filter(|c| !matches!(c, '\u{FE0F}' | '\u{20E3}')).collect();
        let words = normalize(&keycap);
        let token = match words.as_slice() {
            [one] => one,
            [prefix, n] if self.number_prefixes.contains(prefix) => n,
            _ => return None,
        };
        match self.number_words.get(token) {
            Some(n) => Some(*n),
            None if token.len() == 1 => token.parse().ok().filter(|n| (1..=9).contains(n)),
            None => None,
        }
    }

    /// The FAQ answer for a topic.
    pub fn faq_answer(&self, topic: &str) -> Option<&str> {
        self.faq.get(topic).map(|e| e.answer.as_str())
    }

    /// The keywords of one FAQ topic.
    pub fn faq_keywords(&self, topic: &str) -> &[String] {
        self.faq.get(topic).map_or(&[], |e| e.keywords.as_slice())
    }

    /// Every FAQ topic and its answer, as written.
    pub fn faq_answers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.faq.iter().map(|(topic, entry)| (topic.as_str(), entry.answer.as_str()))
    }

    /// The FAQ answers with the shop's facts filled in (once: they are the same in every reply).
    pub fn with_facts(mut self, facts: &super::facts::Facts) -> Self {
        for entry in self.faq.values_mut() {
            entry.answer = facts.fill(&entry.answer);
        }
        self
    }

    /// The item categories customers can name, for the LLM's schema.
    pub fn categories(&self) -> Vec<String> {
        self.categories.iter().map(|(category, _)| category.clone()).collect()
    }

    /// Whether the message is a menu number or an exact opt-out: no model is asked about those.
    pub fn is_unambiguous(&self, text: &str) -> bool {
        let words = normalize(text);
        self.menu_choice(text).is_some() || self.opt_out.contains(&words) || self.more.contains(&words)
    }

    /// Whether a normalized word is filler or one of the router's own keywords (so not part of an item's
    /// name).
    pub fn is_keyword(&self, word: &str) -> bool {
        self.filler.iter().any(|f| f == word)
            || self.intents.iter().flat_map(|(_, phrases)| phrases).any(|p| p.0.iter().any(|k| k == word))
    }

    /// Whether normalized `words` look through the stock ("got any …?") rather than at one piece.
    pub fn is_search(&self, words: &[String]) -> bool {
        self.looking.iter().any(|phrase| !phrase.is_empty() && words.windows(phrase.len()).any(|w| w == phrase))
    }

    /// Whether normalized `words` mean the newest drop ("the one in your last video").
    pub fn means_newest_drop(&self, words: &[String]) -> bool {
        let joined = words.join(" ");
        self.newest.iter().any(|phrase| !phrase.is_empty() && joined.contains(phrase.as_str()))
    }

    /// Whether a normalized word names an item category ("jackets"): a filter, not part of a title.
    pub fn is_category_word(&self, word: &str) -> bool {
        self.categories.iter().flat_map(|(_, phrases)| phrases).any(|p| p.0.len() == 1 && p.0[0] == word)
    }

    /// The FAQ topics, for the LLM's schema.
    pub fn faq_topics(&self) -> Vec<String> {
        self.faq.keys().cloned().collect()
    }

    /// The intent and entities of a message by keywords alone.
    pub fn route(&self, text: &str) -> (Intent, Entities) {
        let words = normalize(text);
        let entities = self.entities(text, &words);
        if self.opt_out.contains(&words) {
            return (Intent::OptOut, entities);
        }
        if self.more.contains(&words) {
            return (Intent::More, entities);
        }
        if let Some(choice) = self.menu_choice(text).and_then(Intent::from_menu) {
            return (choice, entities);
        }
        let intent = self
            .intents
            .iter()
            .find(|(_, phrases)| phrases.iter().any(|p| p.found_in(&words)))
            .map(|(intent, _)| intent.clone());
        let intent = match intent {
            Some(intent) => intent,
            // "PH-7K3Q2A" alone is an order number; a bare SKU or category is a stock question.
            None if entities.order_number.is_some() => Intent::OrderStatus,
            None if entities.sku.is_some() => Intent::Availability,
            None if entities.category.is_some() => Intent::NewDrops,
            None => Intent::Unknown,
        };
        (intent, entities)
    }

    fn entities(&self, text: &str, words: &[String]) -> Entities {
        let mut entities = Entities::default();
        for raw in text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '?' | '!' | '(' | ')')) {
            let token = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '-').to_ascii_uppercase();
            let has_digit = token.chars().any(|c| c.is_ascii_digit());
            let has_letter = token.chars().any(|c| c.is_ascii_alphabetic());
            if token.starts_with("PH-") && token.len() >= 6 {
                entities.order_number.get_or_insert(token);
            } else if has_digit
                && has_letter
                && token.len() >= 4
                && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                entities.sku.get_or_insert(token);
            }
        }
        entities.size = words.iter().find_map(|w| self.size_words.get(w)).cloned();
        entities.category = self
            .categories
            .iter()
            .find(|(_, phrases)| phrases.iter().any(|p| p.found_in(words)))
            .map(|(category, _)| category.clone());
        entities.item_position = words.iter().find_map(|w| self.ordinals.get(w)).copied();
        entities
    }
}

/// A map whose keys are words customers write, with each key normalized as messages are.
fn normalized_keys<V>(map: BTreeMap<String, V>) -> BTreeMap<String, V> {
    map.into_iter().map(|(word, value)| (normalize(&word).join(" "), value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> KeywordRouter {
        KeywordRouter::load(Path::new("/nonexistent")).expect("built-in files")
    }

    #[test]
    fn menu_numbers_in_every_form() {
        let router = shipped();
        for text in ["2", "2.", "#2", " 2) ", "2️⃣", "option 2", "two", "Two!"] {
            assert_eq!(router.menu_choice(text), Some(2), "{text:?}");
        }
        for text in ["22", "2 jackets", "0", "", "size 2"] {
            assert_eq!(router.menu_choice(text), None, "{text:?}");
        }
    }

    #[test]
    fn size_words_and_positions_are_read_from_the_intents_file() {
        let (_, entities) = shipped().route("the second one, I'm usually a Medium");
        assert_eq!((entities.size.as_deref(), entities.item_position), (Some("M"), Some(2)));
        assert_eq!(shipped().route("any 2XL hoodies?").1.size.as_deref(), Some("XXL"));
    }

    #[test]
    fn normalize_folds_case_accents_and_apostrophes() {
        assert_eq!(normalize("Héllo, I'll TAKE it!!"), ["hello", "ill", "take", "it"]);
    }

    #[test]
    fn the_shipped_config_loads() {
        assert!(shipped().faq_answer("shipping").is_some());
    }

    #[test]
    fn search_words_come_from_the_intents_file() {
        let router = shipped();
        assert!(router.is_search(&normalize("Got any jackets?")));
        assert!(!router.is_search(&normalize("will it fit me")));
        assert!(router.means_newest_drop(&normalize("the one in your LAST video")));
        assert!(router.means_newest_drop(&normalize("from your videos yesterday")), "a phrase inside a word");
        assert!(router.is_keyword("please") && !router.is_keyword("carhartt"));
    }

    #[test]
    fn an_unknown_search_key_names_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let text = BUILT_IN_INTENTS.replace("[search]\n", "[search]\nlokking = [\"any\"]\n");
        std::fs::write(dir.path().join(INTENTS_FILE), text).unwrap();
        let problems = KeywordRouter::load(dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].source.ends_with("intents.toml"), "{problems:?}");
        assert!(problems[0].message.contains("unknown field `lokking`"), "{problems:?}");
    }
}
