//! Content addressing: stable point ids (UUIDv5, so re-running never duplicates points) and text
//! fingerprints (so each distinct text is embedded once, see `pipeline::plan` and `pipeline::embed`).

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Fingerprint of a text: the first 128 bits of the sha256 of its exact UTF-8 bytes. Fixed size
/// whatever the text's length; 128 bits keep collisions out of reach (~1e-20 at 10^9 texts).
pub type TextHash = [u8; 16];

pub fn text_hash(text: &str) -> TextHash {
    let d = Sha256::digest(text.as_bytes());
    d[..16].try_into().expect("sha256 has 32 bytes")
}

/// The key under which a vector is stored and looked up (payload `_vdb_text`): the text's
/// fingerprint with the model folded in, so a vector is only ever reused for the same text AND the
/// same model (id incl. precision). 32 hex characters.
pub fn vector_key(model_id: &str, text: &TextHash) -> String {
    let mut h = Sha256::new();
    h.update(b"vdb_core vector key\0");
    h.update(model_id.as_bytes());
    h.update(b"\0");
    h.update(text);
    hex::encode(&h.finalize()[..16])
}

/// The namespace of every vdb_core point id (a fixed, random UUID; never change it: it would
/// re-key every collection ever loaded).
pub const POINT_NAMESPACE: Uuid =
    Uuid::from_bytes([0x6b, 0x1f, 0x0c, 0x3e, 0x92, 0x4d, 0x4a, 0x57, 0x8e, 0x21, 0x5d, 0xc4, 0x0f, 0x7a, 0x13, 0x9b]);

/// Id from the values of the mapped id columns (in mapping order). Values are joined with the
/// unit separator so ("a|b", "c") and ("a", "b|c") differ.
pub fn id_from_values<S: AsRef<str>>(values: &[S]) -> Uuid {
    let mut key = String::with_capacity(64);
    key.push_str("cols:");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            key.push('\u{1f}');
        }
        key.push_str(v.as_ref());
    }
    Uuid::new_v5(&POINT_NAMESPACE, key.as_bytes())
}

/// Id from the row's text, when no id column is mapped.
pub fn id_from_text(text: &str) -> Uuid {
    let mut key = String::with_capacity(text.len() + 5);
    key.push_str("text:");
    key.push_str(text);
    Uuid::new_v5(&POINT_NAMESPACE, key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = id_from_values(&["0000320193-23-000106", "17"]);
        assert_eq!(a, id_from_values(&["0000320193-23-000106", "17"]));
        assert_eq!(a.get_version_num(), 5);
        assert_ne!(a, id_from_values(&["0000320193-23-000106", "18"]));
        assert_ne!(id_from_values(&["a|b", "c"]), id_from_values(&["a", "b|c"]));
        assert_ne!(id_from_text("x"), id_from_values(&["x"]));
        // Pinned: changing the namespace or key format would silently re-key collections.
        // (Cross-checked with Python's uuid.uuid5, which any other client of the collection would use.)
        assert_eq!(id_from_text("hello").to_string(), "c33efb18-c608-5dce-a5a5-052281d39a4e");
        assert_eq!(a.to_string(), "83981d77-228b-5d76-9ae9-5ae572b18bba");
    }

    #[test]
    fn fingerprints_are_exact_bytes_and_keys_fold_in_the_model() {
        assert_eq!(text_hash("Revenue grew."), text_hash("Revenue grew."));
        assert_ne!(text_hash("Revenue grew."), text_hash("Revenue grew. "));
        assert_ne!(text_hash("e\u{301}"), text_hash("\u{e9}"), "no Unicode normalisation: exact bytes");
        let h = text_hash("x");
        assert_eq!(vector_key("m", &h).len(), 32);
        assert_ne!(vector_key("m", &h), vector_key("m+int8", &h));
        assert_ne!(vector_key("m", &h), vector_key("m", &text_hash("y")));
        // Pinned: changing the key format would make every stored vector unfindable.
        assert_eq!(hex::encode(text_hash("hello")), "2cf24dba5fb0a30e26e83b2ac5b9e29e");
    }
}
