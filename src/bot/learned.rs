//! The learned half of the router: a naive Bayes model over a message's words, word pairs and letter
//! groups, trained when the router is built from the examples staff keep in `config/examples.tsv`
//! (`message<TAB>intent`), so a misrouted message added there is routed right from the next start.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::config::Problem;

pub const EXAMPLES_FILE: &str = "examples.tsv";

/// Additive smoothing: a feature never seen with an intent counts as a tenth of a sighting. Small, because
/// the examples are few and most features are seen with one or two intents only (chosen on leave-one-table-out
/// runs over the held-out tables: 0.1 to 0.2 route alike, 1.0 loses 4 points).
const SMOOTHING: f64 = 0.1;

/// Naive Bayes counts a message's word, its word pairs and its letter groups as independent evidence,
/// though they say the same thing several times over: its raw probabilities are near 0 or 1 even when it
/// is wrong. Dividing the log scores by this before the softmax makes "95 % sure" mean something (chosen on
/// the blind replays with the router's thresholds, see `intent::MODEL_SURE`).
const TEMPERATURE: f64 = 5.0;

/// One row of the examples file: the message's words (normalized and written out as the router reads
/// them) and the intent's name.
#[derive(Debug, Clone)]
pub struct Example {
    pub words: Vec<String>,
    pub intent: String,
}

/// Reads `message<TAB>intent` rows (`#` comments and blank lines skipped); every row that cannot be used
/// is a problem naming the file, the line and what is wrong. `known` are the intent names the router can
/// give; `words` turns a message into the router's words.
pub fn parse_examples(
    text: &str,
    source: &str,
    known: &[String],
    words: impl Fn(&str) -> Vec<String>,
) -> Result<Vec<Example>, Vec<Problem>> {
    let mut examples = Vec::new();
    let mut problems = Vec::new();
    // The line and intent of each message's words, so one message cannot be taught two intents.
    let mut taught: HashMap<Vec<String>, (usize, String)> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let field = format!("line {}", i + 1);
        let Some((message, intent)) = line.rsplit_once('\t') else {
            problems.push(Problem::new(source, field, format!("expected `message<TAB>intent`, found {line:?}")));
            continue;
        };
        let intent = intent.trim();
        if !known.iter().any(|k| k == intent) {
            let why = if intent.contains('|') {
                format!("one intent per row, found {intent:?}")
            } else {
                format!("unknown intent {intent:?} (known: {})", known.join(", "))
            };
            problems.push(Problem::new(source, field, why));
            continue;
        }
        let words = words(message);
        match taught.get(&words) {
            Some((other, said)) if said != intent => {
                let why = format!("the same message as line {other} says {said}: one message, one intent");
                problems.push(Problem::new(source, field, why));
                continue;
            }
            Some(_) => {}
            None => {
                taught.insert(words.clone(), (i + 1, intent.to_owned()));
            }
        }
        examples.push(Example { words, intent: intent.to_owned() });
    }
    if problems.is_empty() { Ok(examples) } else { Err(problems) }
}

/// Multinomial naive Bayes over each message's features (each counted once per message).
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// The intents' names, indexed as everywhere below.
    intents: Vec<String>,
    /// log P(intent).
    prior: Vec<f64>,
    /// log of a feature's probability under each intent when it was never seen with it.
    unseen: Vec<f64>,
    /// For each feature seen in training (by its hash): (intent, how much more likely than unseen it is,
    /// as a log).
    features: HashMap<u64, Vec<(u16, f64)>>,
    /// Each example's words and its intent: a message staff taught word for word is routed as taught.
    taught: HashMap<Vec<String>, u16>,
}

impl Model {
    /// Trains on the examples; an empty list gives a model that knows nothing ([`Model::predict`] → None).
    pub fn train(examples: &[Example]) -> Self {
        let mut intents: Vec<String> = examples.iter().map(|e| e.intent.clone()).collect();
        intents.sort();
        intents.dedup();
        let index: HashMap<&str, u16> = intents.iter().enumerate().map(|(i, name)| (name.as_str(), i as u16)).collect();
        let mut rows = vec![0usize; intents.len()];
        let mut totals = vec![0usize; intents.len()];
        // Feature → (intent, examples): most features are seen with one or two intents.
        let mut counts: HashMap<u64, Vec<(u16, usize)>> = HashMap::new();
        for example in examples {
            let k = index[example.intent.as_str()];
            rows[k as usize] += 1;
            for feature in features(&example.words) {
                totals[k as usize] += 1;
                let seen = counts.entry(feature).or_default();
                match seen.iter_mut().find(|(intent, _)| *intent == k) {
                    Some((_, n)) => *n += 1,
                    None => seen.push((k, 1)),
                }
            }
        }
        let vocabulary = counts.len() as f64;
        let denominators: Vec<f64> = totals.iter().map(|t| *t as f64 + SMOOTHING * vocabulary).collect();
        let features = counts
            .into_iter()
            .map(|(feature, by_intent)| {
                let mut gains: Vec<(u16, f64)> =
                    by_intent.into_iter().map(|(k, n)| (k, ((n as f64 + SMOOTHING) / SMOOTHING).ln())).collect();
                gains.sort_by_key(|(k, _)| *k);
                (feature, gains)
            })
            .collect();
        let taught = examples.iter().map(|e| (e.words.clone(), index[e.intent.as_str()])).collect();
        let n = examples.len() as f64;
        Model {
            taught,
            prior: rows.iter().map(|r| (*r as f64 / n).ln()).collect(),
            unseen: denominators.iter().map(|d| (SMOOTHING / d).ln()).collect(),
            intents,
            features,
        }
    }

    /// The intent an example with exactly these words was taught, if one was.
    pub fn recall(&self, words: &[String]) -> Option<&str> {
        self.taught.get(words).map(|k| self.intents[*k as usize].as_str())
    }

    /// How many intents and features the model knows.
    pub fn size(&self) -> (usize, usize) {
        (self.intents.len(), self.features.len())
    }

    /// Every intent's probability for a message's words (normalized, shorthand written out), best first;
    /// empty when the model knows nothing or none of the message's features.
    pub fn predict(&self, words: &[String]) -> Vec<(&str, f64)> {
        let mut scores = self.prior.clone();
        let mut seen = 0;
        for feature in features(words) {
            let Some(gains) = self.features.get(&feature) else { continue };
            seen += 1;
            for (score, unseen) in scores.iter_mut().zip(&self.unseen) {
                *score += unseen;
            }
            for (k, gain) in gains {
                scores[*k as usize] += gain;
            }
        }
        if seen == 0 {
            return Vec::new();
        }
        // Softmax of the tempered scores, shifted by the best so the exponentials cannot overflow.
        let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| ((s - best) / TEMPERATURE).exp()).collect();
        let total: f64 = weights.iter().sum();
        let mut ranked: Vec<(&str, f64)> =
            self.intents.iter().map(String::as_str).zip(weights.iter().map(|w| w / total)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
    }
}

/// What the model reads of a message, each once: its words, the pairs of neighbouring words (the start
/// and end marked, so "hi" alone differs from "hi" opening a question, and a message of emoji alone is
/// the pair of the two marks), and the groups of three and four letters of each word (so "shiping" still
/// shares most of "shipping"). Each as a 64-bit hash of its kind and text: training and routing then
/// allocate no string per feature (a fifth of the start-up cost), and a collision among the ~40,000
/// features is as good as impossible.
fn features(words: &[String]) -> Vec<u64> {
    let feature = |kind: u8, parts: &mut dyn FnMut(&mut DefaultHasher)| {
        let mut hasher = DefaultHasher::new();
        kind.hash(&mut hasher);
        parts(&mut hasher);
        hasher.finish()
    };
    let mut out = Vec::with_capacity(words.len() * 14 + 2);
    for word in words {
        out.push(feature(0, &mut |h| word.hash(h)));
    }
    // None: the start or the end of the message.
    let marked: Vec<Option<&str>> =
        std::iter::once(None).chain(words.iter().map(|w| Some(w.as_str()))).chain(std::iter::once(None)).collect();
    for pair in marked.windows(2) {
        out.push(feature(1, &mut |h| pair.hash(h)));
    }
    for word in words {
        // '\u{2}' and '\u{3}' (start and end of text) mark the ends of the word: no word holds them.
        let letters: Vec<char> = std::iter::once('\u{2}').chain(word.chars()).chain(std::iter::once('\u{3}')).collect();
        for n in [3, 4] {
            for group in letters.windows(n) {
                out.push(feature(2, &mut |h| group.hash(h)));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        super::super::intent::normalize(text)
    }

    fn example(text: &str, intent: &str) -> Example {
        Example { words: words(text), intent: intent.into() }
    }

    #[test]
    fn the_model_learns_which_words_go_with_which_intent() {
        let model = Model::train(&[
            example("where is my package", "order_status"),
            example("has my order shipped", "order_status"),
            example("how much is the jacket", "price"),
            example("whats the price on the dunks", "price"),
        ]);
        assert_eq!(model.predict(&words("wheres my pakage"))[0].0, "order_status");
        assert_eq!(model.predict(&words("price of the jacket?"))[0].0, "price");
        let total: f64 = model.predict(&words("my jacket")).iter().map(|(_, p)| p).sum();
        assert!((total - 1.0).abs() < 1e-9, "probabilities add up to one: {total}");
        assert!(model.predict(&words("zzzz")).is_empty(), "nothing known, nothing said");
        assert!(Model::default().predict(&words("where is my package")).is_empty());
        assert_eq!(model.recall(&words("Where is my package?")), Some("order_status"), "as taught");
        assert_eq!(model.recall(&words("where is my parcel")), None);
    }

    #[test]
    fn a_bad_row_names_its_line_and_what_is_wrong() {
        let known = vec!["greeting".to_owned(), "price".to_owned()];
        let text = "# comment\nhi\tgreeting\nno tab here\nhow much\tprise\nhm\tgreeting|price\nHI!\tprice\n";
        let problems = parse_examples(text, "config/examples.tsv", &known, words).unwrap_err();
        let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(said.len(), 4, "{said:?}");
        assert!(said[0].starts_with("config/examples.tsv: line 3: expected `message<TAB>intent`"), "{said:?}");
        assert!(said[1].contains("line 4: unknown intent \"prise\" (known: greeting, price)"), "{said:?}");
        assert!(said[2].contains("line 5: one intent per row"), "{said:?}");
        assert!(said[3].contains("line 6: the same message as line 2 says greeting"), "{said:?}");
        // A message of emoji or punctuation alone is learned as a message without words.
        let fine = parse_examples("hi\tgreeting\n\nhow much\tprice\n!!!\tgreeting\n", "x", &known, words).unwrap();
        assert_eq!(fine.len(), 3);
    }
}
