//! BM25 sparse vectors, token for token what Qdrant computes.
//!
//! Qdrant's BM25 (its server-side inference `Document(model="qdrant/bm25")` and qdrant-edge's
//! `EdgeBm25`) turns a text into a sparse vector in two steps, reproduced here:
//!
//! 1. **Tokens** ([`tokenize`]): Qdrant's `word` tokenizer with its English defaults: split on every
//!    character that is not alphanumeric, lowercase, drop English stop words ([`stopwords`]), Snowball
//!    English stemmer (`qdrant-rust-stemmers`, the crate Qdrant itself uses).
//! 2. **Weights**: a token's id is its murmur3 32-bit hash (seed 0) as `|i32|`; a document's value for
//!    a token is BM25's term-frequency part `tf·(k+1) / (k·(1 − b + b·len/avg_len) + tf)`; a query's
//!    values are 1. The IDF part is not in the vector: the collection's sparse vector has Qdrant's
//!    `idf` modifier, so the engine computes IDF from the live collection at search time.
//!
//! The collection records the parameters ([`Bm25Config`], under the metadata key `vdb_core_bm25`): a
//! run with other parameters is refused, as one with another model is. The tests compare every
//! step with qdrant-edge's own `EdgeBm25` (built with the `embedded` feature); this module needs
//! none of qdrant-edge, so the Docker image (built without it) writes the same vectors.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Result, VdbError};

mod stopwords;

/// A sparse vector: token ids (ascending, distinct) and their values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The dot product with another sparse vector (both sorted by index).
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (mut i, mut j, mut sum) = (0, 0, 0.0f32);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[i] * other.values[j];
                    i += 1;
                    j += 1;
                }
            }
        }
        sum
    }
}

/// BM25 parameters, named as in Qdrant's `Bm25Config` (`k`, `b`, `avg_len`); the defaults are
/// Qdrant's (and FastEmbed's `Qdrant/bm25`). The tokenizer is fixed: `word`, English, lowercase,
/// English stop words, Snowball English stemmer (Qdrant's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bm25Config {
    /// Term-frequency saturation.
    #[serde(default = "Bm25Config::default_k")]
    pub k: f64,
    /// Length normalisation: 0 none, 1 full.
    #[serde(default = "Bm25Config::default_b")]
    pub b: f64,
    /// The average document length (tokens after stop words) the weights assume.
    #[serde(default = "Bm25Config::default_avg_len")]
    pub avg_len: f64,
}

impl Default for Bm25Config {
    fn default() -> Self {
        Bm25Config { k: 1.2, b: 0.75, avg_len: 256.0 }
    }
}

impl Bm25Config {
    fn default_k() -> f64 {
        1.2
    }
    fn default_b() -> f64 {
        0.75
    }
    fn default_avg_len() -> f64 {
        256.0
    }

    /// Qdrant's checks: `k` finite and >= 0, `b` in [0, 1], `avg_len` finite and > 0.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(VdbError::new(ErrorKind::InvalidConfig, what));
        if !self.k.is_finite() || self.k < 0.0 {
            return bad(format!("BM25 k must be a finite number >= 0, got {}", self.k));
        }
        if !self.b.is_finite() || !(0.0..=1.0).contains(&self.b) {
            return bad(format!("BM25 b must be between 0 and 1, got {}", self.b));
        }
        if !self.avg_len.is_finite() || self.avg_len <= 0.0 {
            return bad(format!("BM25 avg_len must be a finite number > 0, got {}", self.avg_len));
        }
        Ok(())
    }

    /// The parameters as the collection records them: Qdrant's `Bm25Config` JSON, with the tokenizer
    /// settings spelled out so that a reader knows how to build a matching query.
    pub fn to_metadata(&self) -> serde_json::Value {
        serde_json::json!({
            "model": "qdrant/bm25",
            "k": self.k,
            "b": self.b,
            "avg_len": self.avg_len,
            "tokenizer": "word",
            "language": "english",
            "lowercase": true,
        })
    }

    /// The parameters a collection's metadata records (see [`Bm25Config::to_metadata`]); `Err`
    /// (what was found) for metadata this version does not write.
    pub fn from_metadata(v: &serde_json::Value) -> std::result::Result<Bm25Config, String> {
        let fixed = [("model", "qdrant/bm25"), ("tokenizer", "word"), ("language", "english")];
        for (key, want) in fixed {
            match v.get(key).and_then(|x| x.as_str()) {
                Some(got) if got == want => {}
                got => return Err(format!("BM25 with {key} {got:?} (this version writes {want:?})")),
            }
        }
        let num = |key: &str| v.get(key).and_then(|x| x.as_f64()).ok_or_else(|| format!("BM25 metadata without {key}"));
        Ok(Bm25Config { k: num("k")?, b: num("b")?, avg_len: num("avg_len")? })
    }

    pub fn describe(&self) -> String {
        format!("BM25 k={} b={} avg_len={}", self.k, self.b, self.avg_len)
    }
}

/// The BM25 model: tokenizer and weights. Cheap to build; build once and reuse.
#[derive(Debug, Clone, Copy)]
pub struct Bm25 {
    config: Bm25Config,
}

impl Bm25 {
    pub fn new(config: Bm25Config) -> Result<Bm25> {
        config.validate()?;
        Ok(Bm25 { config })
    }

    pub fn config(&self) -> &Bm25Config {
        &self.config
    }

    /// A document's vector: each distinct token with its BM25 term-frequency weight.
    pub fn embed_document(&self, text: &str) -> SparseVector {
        let tokens = tokenize(text);
        if tokens.is_empty() {
            return SparseVector::default();
        }
        let doc_len = tokens.len() as f64;
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for t in &tokens {
            *counts.entry(t.as_ref()).or_insert(0) += 1;
        }
        let Bm25Config { k, b, avg_len } = self.config;
        let mut weights = BTreeMap::new();
        for (token, count) in counts {
            let n = f64::from(count);
            // The same operations in the same order as Qdrant's (`mul_add` included): equal bits.
            let tf = n * (k + 1.0) / k.mul_add(1.0 - b + b * doc_len / avg_len, n);
            weights.insert(token_id(token), tf as f32);
        }
        let (indices, values) = weights.into_iter().unzip();
        SparseVector { indices, values }
    }

    /// A query's vector: each distinct token with value 1 (the collection's IDF modifier weighs it).
    pub fn embed_query(&self, text: &str) -> SparseVector {
        let ids: HashSet<u32> = tokenize(text).iter().map(|t| token_id(t)).collect();
        let mut indices: Vec<u32> = ids.into_iter().collect();
        indices.sort_unstable();
        let values = vec![1.0; indices.len()];
        SparseVector { indices, values }
    }
}

/// A token's id: murmur3 32-bit (seed 0) of its UTF-8 bytes, as `|i32|` (Qdrant's and FastEmbed's).
pub fn token_id(token: &str) -> u32 {
    (murmur3_32::Murmur3::hash(0, token.as_bytes()) as i32).unsigned_abs()
}

fn stop_words() -> &'static HashSet<String> {
    static WORDS: OnceLock<HashSet<String>> = OnceLock::new();
    // Lowercased as Qdrant's filter does when the tokenizer lowercases.
    WORDS.get_or_init(|| stopwords::ENGLISH.iter().map(|w| w.to_lowercase()).collect())
}

fn stemmer() -> &'static rust_stemmers::Stemmer {
    static STEMMER: OnceLock<rust_stemmers::Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English))
}

/// Qdrant's `word` tokenizer with the English defaults: the tokens BM25 counts, in text order.
pub fn tokenize(text: &str) -> Vec<Cow<'_, str>> {
    let stop = stop_words();
    let stem = stemmer();
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .filter_map(|t| {
            let lower = t.to_lowercase();
            if stop.contains(&lower) {
                return None;
            }
            Some(Cow::Owned(stem.stem_cow(Cow::Owned(lower)).into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts that exercise every step: stop words, punctuation, numbers, unicode, casing, a text
    /// that is all stop words, repeated tokens, stems.
    pub(crate) const TABLE: &[&str] = &[
        "Supply chain disruptions reduced our gross margin in fiscal 2023.",
        "The the THE and of",
        "",
        "   ,.;  ",
        "LIBOR transition; Item 1A. Risk Factors — goodwill impairment (ASC 350)",
        "We may not be able to compete; competition, competitors and competitive pressures.",
        "Änderungen der Zinssätze, naïve café résumé – ЦБ РФ 中国 市场",
        "don't can't won't it's we're",
        "10-K 10-Q 8-K 2016 2017 $1.5 billion 3.25% notes due 2030",
        "running runs ran runner easily fairly",
        "cyber-attacks, cybersecurity breaches; data breach breach BREACH",
        "snake_case_identifiers and e-mail@example.com",
    ];

    #[test]
    fn the_document_formula() {
        // k=1.2, b=0.75, avg_len=5: a token twice in a 5-token document weighs
        // 2·2.2 / (1.2·(0.25 + 0.75·5/5) + 2) = 1.375 (Qdrant's own unit test).
        let bm = Bm25::new(Bm25Config { k: 1.2, b: 0.75, avg_len: 5.0 }).unwrap();
        let v = bm.embed_document("cat sat cat mat hat");
        let at = v.indices.iter().position(|&i| i == token_id("cat")).unwrap();
        assert!((v.values[at] - 1.375).abs() < 1e-6, "{}", v.values[at]);
        assert!(v.indices.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn queries_are_unit_weighted_and_distinct() {
        let bm = Bm25::new(Bm25Config::default()).unwrap();
        let q = bm.embed_query("breach breaches BREACH data");
        assert_eq!(q.indices.len(), 2, "breach/breaches/BREACH stem to one token");
        assert!(q.values.iter().all(|&v| v == 1.0));
        assert!(bm.embed_query("the of and").is_empty());
    }

    #[test]
    fn bad_parameters_are_config_errors() {
        for c in [
            Bm25Config { k: -1.0, ..Default::default() },
            Bm25Config { b: 1.5, ..Default::default() },
            Bm25Config { avg_len: 0.0, ..Default::default() },
            Bm25Config { avg_len: f64::NAN, ..Default::default() },
        ] {
            assert_eq!(Bm25::new(c).unwrap_err().kind, ErrorKind::InvalidConfig, "{c:?}");
        }
    }

    #[test]
    fn metadata_round_trips_and_refuses_other_tokenizers() {
        let c = Bm25Config { k: 1.5, b: 0.5, avg_len: 30.0 };
        assert_eq!(Bm25Config::from_metadata(&c.to_metadata()).unwrap(), c);
        let mut other = c.to_metadata();
        other["language"] = "german".into();
        assert!(Bm25Config::from_metadata(&other).unwrap_err().contains("language"));
    }

    /// Token for token and bit for bit what qdrant-edge's BM25 (Qdrant's own pipeline) gives.
    #[cfg(feature = "embedded")]
    #[test]
    fn equals_qdrant_edge_bm25() {
        use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
        for config in [Bm25Config::default(), Bm25Config { k: 1.5, b: 0.3, avg_len: 12.0 }] {
            let ours = Bm25::new(config).unwrap();
            let edge_config: EdgeBm25Config = serde_json::from_value(serde_json::json!({
                "k": config.k, "b": config.b, "avg_len": config.avg_len,
            }))
            .unwrap();
            let edge = EdgeBm25::new(edge_config).unwrap();
            for text in TABLE {
                let (d, ed) = (ours.embed_document(text), edge.embed_document(text));
                assert_eq!(d.indices, ed.indices, "document {text:?}");
                let (a, b): (Vec<u32>, Vec<u32>) =
                    (d.values.iter().map(|v| v.to_bits()).collect(), ed.values.iter().map(|v| v.to_bits()).collect());
                assert_eq!(a, b, "document weights {text:?}");
                let (q, eq) = (ours.embed_query(text), edge.embed_query(text));
                assert_eq!((q.indices, q.values), (eq.indices, eq.values), "query {text:?}");
            }
        }
    }
}
