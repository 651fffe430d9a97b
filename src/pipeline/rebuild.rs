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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::Settings;
use crate::error::{ErrorKind, Result, VdbError};
use crate::handoff::{Manifest, RunDir};
use crate::pipeline::verify::Report;
use crate::progress::peak_rss_mib;
use crate::store::VectorStore;

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

/// A fresh collection name for a rebuild of `alias`: `<alias>__v<YYYYMMDDhhmmssSSS>_<6 hex>` (UTC,
/// to the millisecond, so that generations sort by creation time).
pub fn generation_name(alias: &str) -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let secs = ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let random = &uuid::Uuid::new_v4().simple().to_string()[..6];
    format!(
        "{alias}{GENERATION}{y:04}{mo:02}{d:02}{:02}{:02}{:02}{:03}_{random}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// Whether `name` is a generation of `alias` made by [`generation_name`] (and nothing else: other
/// collections are never touched).
pub fn is_generation_of(name: &str, alias: &str) -> bool {
    generation_time(name, alias).is_some()
}

/// When generation `name` of `alias` was created, as the number `YYYYMMDDhhmmssSSS` (UTC), which
/// orders generations by age; `None` when `name` is not a generation of `alias`. Generations named
/// to the second only (`YYYYMMDDhhmmss`, by vdb_core 0.1 before milliseconds) count as `SSS = 000`.
pub fn generation_time(name: &str, alias: &str) -> Option<u64> {
    let rest = name.strip_prefix(alias)?.strip_prefix(GENERATION)?;
    let (digits, random) = rest.split_once('_')?;
    let hex = random.len() == 6 && random.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    if !hex || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    match digits.len() {
        17 => digits.parse().ok(),
        14 => digits.parse::<u64>().ok().map(|t| t * 1000),
        _ => None,
    }
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

/// The generations of `alias` that a rebuild run directory names and has not switched to yet, with
/// that directory: such a run can still resume (clearing its failed tasks), so its collection must
/// stay. Looked for beside `run` and in every DAG's folder of the work directory
/// (`$VDB_WORK_DIR/<dag_id>/<run_id>`); a manifest that cannot be read is passed over.
pub fn generations_in_progress(run: &RunDir, alias: &str) -> HashMap<String, PathBuf> {
    let mut parents: Vec<PathBuf> = run.path.parent().map(Path::to_path_buf).into_iter().collect();
    if let Ok(settings) = Settings::from_env() {
        if let Ok(dags) = std::fs::read_dir(&settings.work_dir) {
            parents.extend(dags.flatten().map(|d| d.path()).filter(|p| p.is_dir()));
        }
    }
    parents.sort();
    parents.dedup();
    let mut out = HashMap::new();
    for parent in parents {
        let Ok(runs) = std::fs::read_dir(&parent) else { continue };
        for dir in runs.flatten().map(|d| d.path()) {
            if dir == run.path || !dir.join("manifest.json").is_file() {
                continue;
            }
            if let Ok(Manifest { rebuild: Some(r), .. }) = Manifest::read(&RunDir::at(&dir)) {
                if r.alias == alias && !r.switched {
                    out.insert(r.collection, dir);
                }
            }
        }
    }
    out
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
    // Only generations older than the previous one go: a newer one may be another rebuild's,
    // still loading. And never one that a run directory still building it names (it may resume).
    let cutoff = previous.as_deref().and_then(|p| generation_time(p, collection)).filter(|_| known);
    if let Some(cutoff) = cutoff {
        let aliased: Vec<String> = store.aliases()?.into_iter().map(|(_, c)| c).collect();
        let claimed = generations_in_progress(run, collection);
        for old in store.collections()? {
            let older = generation_time(&old, collection).is_some_and(|t| t < cutoff);
            if !older || old == built || aliased.contains(&old) {
                continue;
            }
            if let Some(dir) = claimed.get(&old) {
                log::info!("old collection '{old}' is kept: run {} is still building it", dir.display());
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
    Report::update(run, |report| {
        report.record_switch(&built, previous.as_deref(), store.count(collection)?);
        if let Some(st) = m.steps.get("switch") {
            report.steps.insert("switch".into(), st.clone());
        }
        Ok(())
    })?;
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
