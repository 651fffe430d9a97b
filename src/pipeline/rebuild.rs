//! Blue/green rebuild: a run builds a fresh collection and, once verify has found every row in it,
//! switches the user's collection name (an alias) to it in one atomic step.
//!
//! - `ensure` (with `rebuild`) creates the run's own collection `<name>__v<UTC time>_<random>` and
//!   records it in the manifest; load, index and verify work on it, while searches of `<name>` keep
//!   answering from the collection the alias names (they never see a half-built one).
//! - [`switch`] (after verify) points the alias `<name>` at the new collection. The collection it
//!   named before is kept (to switch back by hand, or compare); older generations of `<name>` are
//!   deleted. A run that fails before the switch leaves `<name>` as it was.
//! - The first rebuild of a collection that was created by a plain ingest: Qdrant cannot give an
//!   alias the name of an existing collection, so that collection is deleted right before the alias
//!   is created (searches fail for that moment; logged as a warning). From then on every switch is
//!   atomic.
//!
//! Re-running any step of a rebuild (same run directory) continues with the same collection;
//! re-running the switch after it happened changes nothing.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Result, VdbError};
use crate::handoff::atomic::write_bytes_atomic;
use crate::handoff::{Manifest, RunDir};
use crate::pipeline::verify::Report;
use crate::progress::peak_rss_mib;
use crate::store::VectorStore;

/// What a rebuild run has done so far (in the manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebuildState {
    /// The name people search: an alias once the switch has happened.
    pub alias: String,
    /// The collection this run builds.
    pub collection: String,
    /// Set by the switch.
    #[serde(default)]
    pub switched: bool,
    /// The collection the alias named before the switch (kept until the next rebuild).
    #[serde(default)]
    pub previous: Option<String>,
}

/// What the switch did.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchResult {
    /// False when the run is not a rebuild (nothing to switch).
    pub switched: bool,
    pub alias: String,
    pub collection: Option<String>,
    pub previous: Option<String>,
    /// Older generations deleted.
    pub deleted: Vec<String>,
    pub seconds: f64,
}

/// The marker between a name and its generations.
const GENERATION: &str = "__v";

/// A fresh collection name for a rebuild of `alias`: `<alias>__v<YYYYMMDDhhmmss>_<6 hex>` (UTC).
pub fn generation_name(alias: &str) -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let random = &uuid::Uuid::new_v4().simple().to_string()[..6];
    format!("{alias}{GENERATION}{y:04}{mo:02}{d:02}{:02}{:02}{:02}_{random}", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Whether `name` is a generation of `alias` made by [`generation_name`] (and nothing else: other
/// collections are never touched).
pub fn is_generation_of(name: &str, alias: &str) -> bool {
    let Some(rest) = name.strip_prefix(alias).and_then(|r| r.strip_prefix(GENERATION)) else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 21
        && b[..14].iter().all(u8::is_ascii_digit)
        && b[14] == b'_'
        && b[15..].iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The collection the steps after `ensure` write to and check: this run's own collection in a
/// rebuild, `collection` otherwise.
pub fn build_target(m: &Manifest, collection: &str, run: &RunDir) -> Result<String> {
    match &m.rebuild {
        Some(r) if r.alias == collection => Ok(r.collection.clone()),
        Some(r) => Err(VdbError::new(
            ErrorKind::RunMismatch,
            format!(
                "run {} rebuilds collection '{}', not '{collection}'; use a new run directory",
                run.path.display(),
                r.alias
            ),
        )),
        None => Ok(collection.to_string()),
    }
}

/// Point the alias `collection` at the collection this rebuild built (see the module docs).
/// Refused before verify has passed; nothing to do for a run that is not a rebuild.
pub fn switch(run: &RunDir, store: &dyn VectorStore, collection: &str) -> Result<SwitchResult> {
    let started = Instant::now();
    let m = Manifest::read(run)?;
    let Some(state) = m.rebuild.clone() else {
        return Ok(SwitchResult {
            switched: false,
            alias: collection.to_string(),
            collection: None,
            previous: None,
            deleted: Vec::new(),
            seconds: 0.0,
        });
    };
    let built = build_target(&m, collection, run)?;
    if !m.verified {
        return Err(VdbError::new(
            ErrorKind::Handoff,
            format!(
                "run {} is not verified: '{collection}' keeps naming the collection it names now until the verify step passes",
                run.path.display()
            ),
        ));
    }
    let aliases = store.aliases()?;
    let current = aliases.iter().find(|(a, _)| a == collection).map(|(_, c)| c.clone());
    // `previous` is `Some` only when known for certain: older generations are deleted only then.
    let (previous, known) = if current.as_deref() == Some(built.as_str()) {
        // Switched already (this step ran before, maybe without recording it).
        (state.previous.clone(), state.switched)
    } else {
        if current.is_none() && store.collection_exists(collection)? {
            log::warn!(
                "'{collection}' at {} is a collection, not an alias: it is deleted and '{collection}' becomes an alias \
                 of '{built}' (Qdrant cannot give an alias the name of a collection); later rebuilds keep the previous \
                 collection",
                store.describe()
            );
            store.delete_collection(collection)?;
        }
        (store.switch_alias(collection, &built)?, true)
    };
    Manifest::update(run, |m| {
        if let Some(r) = m.rebuild.as_mut() {
            r.switched = true;
            r.previous.clone_from(&previous);
        }
        Ok(())
    })?;
    log::info!("'{collection}' now names '{built}' (before: {})", previous.as_deref().unwrap_or("none"));

    let mut deleted = Vec::new();
    if known {
        let aliased: Vec<String> = store.aliases()?.into_iter().map(|(_, c)| c).collect();
        for old in store.collections()? {
            let keep = old == built || Some(&old) == previous.as_ref() || aliased.contains(&old);
            if keep || !is_generation_of(&old, collection) {
                continue;
            }
            // Best effort: a collection someone still has open is left for the next rebuild.
            match store.delete_collection(&old) {
                Ok(_) => deleted.push(old),
                Err(e) => log::warn!("old collection '{old}' was not deleted ({e}); the next rebuild tries again"),
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (m, ()) = Manifest::update(run, |m| {
        m.add_step("switch", seconds, 0, peak_rss_mib());
        Ok(())
    })?;
    if let Ok(bytes) = std::fs::read(run.report_path()) {
        if let Ok(mut report) = serde_json::from_slice::<Report>(&bytes) {
            report.record_switch(&built, previous.as_deref(), store.count(collection)?);
            if let Some(st) = m.steps.get("switch") {
                report.steps.insert("switch".into(), st.clone());
            }
            let bytes = serde_json::to_vec_pretty(&report).map_err(|e| VdbError::internal(e.to_string()))?;
            write_bytes_atomic(&run.report_path(), &bytes)?;
        }
    }
    Ok(SwitchResult {
        switched: true,
        alias: collection.to_string(),
        collection: Some(built),
        previous,
        deleted,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names_are_recognised_and_nothing_else() {
        let g = generation_name("sec");
        assert!(is_generation_of(&g, "sec"), "{g}");
        assert!(crate::store::validate_collection_name(&g).is_ok());
        assert!(!is_generation_of(&g, "se"));
        assert!(!is_generation_of(&generation_name("sec_x"), "sec"));
        for other in ["sec", "sec__v1", "sec__vbackup", "sec__v20261126120000_ABCDEF", "sec__v20261126120000_abcdefg"] {
            assert!(!is_generation_of(other, "sec"), "{other}");
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
