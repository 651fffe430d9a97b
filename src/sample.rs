//! `vdb sample-data`: a deterministic SEC-filings-like parquet, so tests, benchmarks and the
//! README's run command never download anything.
//!
//! Columns: filing_id, cik, company, ticker, form_type, filing_date (date32), fiscal_year, section,
//! sentence_index, sentence. Sentences are template-built financial prose (mean ~40 tokens).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::error::{ErrorKind, Result, VdbError};

/// SplitMix64: tiny, fast, and identical on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

const COMPANIES: &[(&str, i64, &str)] = &[
    ("Apple Inc.", 320193, "AAPL"),
    ("Microsoft Corporation", 789019, "MSFT"),
    ("Amazon.com, Inc.", 1018724, "AMZN"),
    ("Alphabet Inc.", 1652044, "GOOGL"),
    ("Tesla, Inc.", 1318605, "TSLA"),
    ("JPMorgan Chase & Co.", 19617, "JPM"),
    ("Exxon Mobil Corporation", 34088, "XOM"),
    ("Johnson & Johnson", 200406, "JNJ"),
    ("The Procter & Gamble Company", 80424, "PG"),
    ("NVIDIA Corporation", 1045810, "NVDA"),
    ("Pfizer Inc.", 78003, "PFE"),
    ("The Coca-Cola Company", 21344, "KO"),
    ("Walmart Inc.", 104169, "WMT"),
    ("Chevron Corporation", 93410, "CVX"),
    ("Intel Corporation", 50863, "INTC"),
    ("Caterpillar Inc.", 18230, "CAT"),
    ("Bank of America Corporation", 70858, "BAC"),
    ("The Boeing Company", 12927, "BA"),
    ("Netflix, Inc.", 1065280, "NFLX"),
    ("Union Pacific Corporation", 100885, "UNP"),
];

const SECTIONS_10K: &[&str] = &[
    "Item 1. Business",
    "Item 1A. Risk Factors",
    "Item 7. Management's Discussion and Analysis",
    "Item 7A. Quantitative and Qualitative Disclosures About Market Risk",
    "Item 8. Financial Statements and Supplementary Data",
];
const SECTIONS_10Q: &[&str] = &[
    "Part I, Item 2. Management's Discussion and Analysis",
    "Part I, Item 3. Quantitative and Qualitative Disclosures About Market Risk",
    "Part II, Item 1A. Risk Factors",
];
const SECTIONS_8K: &[&str] = &["Item 2.02 Results of Operations", "Item 8.01 Other Events"];

const SEGMENTS: &[&str] = &[
    "Products",
    "Services",
    "Cloud",
    "Consumer",
    "Commercial Banking",
    "Upstream",
    "Downstream",
    "Pharmaceutical",
    "Medical Devices",
    "Automotive",
    "Energy Generation and Storage",
    "Advertising",
    "Data Center",
    "Gaming",
    "Freight",
    "Wealth Management",
];
const METRICS: &[&str] = &[
    "net revenue",
    "gross margin",
    "operating income",
    "net income",
    "diluted earnings per share",
    "free cash flow",
    "research and development expense",
    "selling, general and administrative expense",
    "capital expenditures",
    "operating cash flow",
];
const DIRECTIONS: &[&str] = &["increased", "decreased", "grew", "declined", "remained relatively flat"];
const DRIVERS: &[&str] = &[
    "higher average selling prices",
    "increased unit volumes",
    "unfavorable foreign currency movements",
    "lower demand in certain international markets",
    "the integration of recently acquired businesses",
    "supply chain constraints and elevated component costs",
    "continued investment in headcount",
    "a one-time impairment charge",
    "the timing of customer orders",
    "higher interest rates on deposits",
    "favorable pricing and product mix",
    "increased freight and logistics costs",
];
const RISKS: &[&str] = &[
    "adverse changes in global economic conditions",
    "cybersecurity incidents and data breaches",
    "the loss of key personnel",
    "changes in tax laws or their interpretation",
    "disruptions in our supply chain",
    "intense competition",
    "litigation and regulatory proceedings",
    "fluctuations in foreign currency exchange rates",
    "climate-related physical and transition risks",
    "our ability to protect our intellectual property",
    "pandemics and other public health crises",
];
const CONSEQUENCES: &[&str] = &[
    "could materially adversely affect our business, financial condition and results of operations",
    "may cause our stock price to decline",
    "could result in significant costs and reputational harm",
    "could reduce demand for our products and services",
    "may require us to record additional impairment charges",
];
const INSTRUMENTS: &[&str] = &[
    "foreign currency forward contracts",
    "interest rate swaps",
    "commodity futures",
    "cross-currency swaps",
    "available-for-sale debt securities",
];

fn amount(rng: &mut Rng) -> String {
    let v = rng.range(5, 99_999) as f64 / 10.0;
    format!("{v:.1}")
}

fn sentence(rng: &mut Rng, company: &str, year: i32) -> String {
    let short = company.trim_end_matches('.').split(',').next().unwrap_or(company).to_string();
    match rng.below(12) {
        0 => format!(
            "{} {} {} {}% to ${} million in fiscal {}, primarily due to {}.",
            short, rng.pick(METRICS), rng.pick(DIRECTIONS), rng.range(1, 45), amount(rng), year, rng.pick(DRIVERS)
        ),
        1 => format!(
            "Revenue from the {} segment was ${} million compared to ${} million in the prior year, reflecting {} partially offset by {}.",
            rng.pick(SEGMENTS), amount(rng), amount(rng), rng.pick(DRIVERS), rng.pick(DRIVERS)
        ),
        2 => format!("We are subject to risks related to {}, which {}.", rng.pick(RISKS), rng.pick(CONSEQUENCES)),
        3 => format!(
            "As of December 31, {}, we had cash, cash equivalents and marketable securities of ${} billion.",
            year, rng.range(1, 180)
        ),
        4 => format!(
            "We use {} to manage exposure to {}; a hypothetical 10% adverse change would have reduced fair value by approximately ${} million.",
            rng.pick(INSTRUMENTS), rng.pick(RISKS), amount(rng)
        ),
        5 => format!(
            "During fiscal {}, the Board of Directors authorized the repurchase of up to ${} billion of common stock, of which ${} billion remained available.",
            year, rng.range(5, 90), rng.range(1, 40)
        ),
        6 => format!("{short} employed approximately {} full-time employees worldwide.", rng.range(1_000, 400_000)),
        7 => format!(
            "If we are unable to manage {} effectively, our results of operations {}.",
            rng.pick(RISKS), rng.pick(CONSEQUENCES)
        ),
        8 => format!(
            "The effective tax rate was {}.{}% for fiscal {} compared to {}.{}% for fiscal {}, driven by {}.",
            rng.range(8, 28), rng.below(10), year, rng.range(8, 28), rng.below(10), year - 1, rng.pick(DRIVERS)
        ),
        9 => format!(
            "Total debt outstanding was ${} billion with a weighted-average interest rate of {}.{}% and maturities through {}.",
            rng.range(1, 120), rng.range(1, 7), rng.below(100), year + rng.range(3, 30) as i32
        ),
        10 => format!(
            "Goodwill associated with the {} reporting unit was tested for impairment, and no impairment was identified because the fair value exceeded its carrying amount by {}%.",
            rng.pick(SEGMENTS), rng.range(5, 300)
        ),
        _ => format!(
            "Our future performance depends on {} and on {}, and {}.",
            rng.pick(RISKS), rng.pick(RISKS), rng.pick(CONSEQUENCES)
        ),
    }
}

/// What `write_sample` produced.
#[derive(Debug, Clone, Serialize)]
pub struct SampleInfo {
    pub path: String,
    pub rows: u64,
    pub filings: u64,
    pub size_bytes: u64,
}

pub fn sample_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("filing_id", DataType::Utf8, false),
        Field::new("cik", DataType::Int64, false),
        Field::new("company", DataType::Utf8, false),
        Field::new("ticker", DataType::Utf8, false),
        Field::new("form_type", DataType::Utf8, false),
        Field::new("filing_date", DataType::Date32, false),
        Field::new("fiscal_year", DataType::Int32, false),
        Field::new("section", DataType::Utf8, false),
        Field::new("sentence_index", DataType::Int32, false),
        Field::new("sentence", DataType::Utf8, true),
    ]))
}

/// Write `rows` deterministic rows (same `seed`, same bytes of data) to `path`, streaming in row
/// groups of 50,000 so memory stays flat for any size.
pub fn write_sample(path: &Path, rows: u64, seed: u64) -> Result<SampleInfo> {
    write_sample_with(path, rows, seed, 0.0)
}

/// One row group's columns, in [`sample_schema`] order.
type Columns<'a> = (
    Vec<String>,
    Vec<i64>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<i32>,
    Vec<i32>,
    Vec<&'a str>,
    Vec<i32>,
    Vec<String>,
);

/// Sentences remembered per company for repeats.
const REPEAT_POOL: usize = 4096;

/// [`write_sample`] where a share `duplicate_rate` (0..=1) of the sentences repeats, verbatim, an
/// earlier sentence of the same company, as real filings repeat their risk factors year after
/// year (public 10-K Item 1A sections: 45-65% of a year's sentences appear in an earlier year).
pub fn write_sample_with(path: &Path, rows: u64, seed: u64, duplicate_rate: f64) -> Result<SampleInfo> {
    if !(0.0..=1.0).contains(&duplicate_rate) {
        return Err(VdbError::new(
            ErrorKind::InvalidConfig,
            format!("duplicate rate must be between 0 and 1, not {duplicate_rate}"),
        ));
    }
    let mut pools: Vec<Vec<String>> = vec![Vec::new(); COMPANIES.len()];
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| VdbError::io(dir, "cannot create directory", e))?;
    }
    let file = File::create(path).map_err(|e| VdbError::io(path, "cannot create", e))?;
    let schema = sample_schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(50_000))
        .build();
    let perr = |e: parquet::errors::ParquetError| {
        VdbError::new(ErrorKind::Io, format!("cannot write {}: {e}", path.display())).with_file(path)
    };
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(perr)?;
    let mut rng = Rng(seed ^ 0x5EC_F11E5);
    let mut written = 0u64;
    let mut filings = 0u64;
    // Per-filing state.
    let (mut company, mut form, mut section_list, mut year, mut date, mut left, mut idx, mut fid) =
        (COMPANIES[0], "10-K", SECTIONS_10K, 2020, 0i32, 0u64, 0i32, String::new());
    let mut section = SECTIONS_10K[0];
    while written < rows {
        let n = (rows - written).min(10_000) as usize;
        let mut cols: Columns = Default::default();
        for _ in 0..n {
            if left == 0 {
                filings += 1;
                company = COMPANIES[rng.below(COMPANIES.len())];
                let f = rng.below(10);
                (form, section_list) = if f < 5 {
                    ("10-K", SECTIONS_10K)
                } else if f < 9 {
                    ("10-Q", SECTIONS_10Q)
                } else {
                    ("8-K", SECTIONS_8K)
                };
                year = 2015 + rng.below(10) as i32;
                // Days since epoch: spread over the fiscal year after `year`.
                date = (year - 1970 + 1) * 365 + (year - 1969 + 1) / 4 + rng.below(330) as i32;
                left = rng.range(20, 120);
                idx = 0;
                fid = format!("{:010}-{:02}-{:06}", company.1, year % 100 + 1, filings);
                section = section_list[0];
            }
            if idx > 0 && rng.below(15) == 0 {
                section = rng.pick(section_list);
            }
            cols.0.push(fid.clone());
            cols.1.push(company.1);
            cols.2.push(company.0);
            cols.3.push(company.2);
            cols.4.push(form);
            cols.5.push(date);
            cols.6.push(year);
            cols.7.push(section);
            cols.8.push(idx);
            let c = COMPANIES.iter().position(|x| x.1 == company.1).unwrap_or(0);
            let repeat = duplicate_rate > 0.0
                && !pools[c].is_empty()
                && ((rng.next() >> 11) as f64 / (1u64 << 53) as f64) < duplicate_rate;
            let text = if repeat {
                pools[c][rng.below(pools[c].len())].clone()
            } else {
                let t = sentence(&mut rng, company.0, year);
                if duplicate_rate > 0.0 {
                    if pools[c].len() < REPEAT_POOL {
                        pools[c].push(t.clone());
                    } else {
                        let k = rng.below(REPEAT_POOL);
                        pools[c][k] = t.clone();
                    }
                }
                t
            };
            cols.9.push(text);
            idx += 1;
            left -= 1;
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(cols.0)),
            Arc::new(Int64Array::from(cols.1)),
            Arc::new(StringArray::from(cols.2)),
            Arc::new(StringArray::from(cols.3)),
            Arc::new(StringArray::from(cols.4)),
            Arc::new(Date32Array::from(cols.5)),
            Arc::new(Int32Array::from(cols.6)),
            Arc::new(StringArray::from(cols.7)),
            Arc::new(Int32Array::from(cols.8)),
            Arc::new(StringArray::from(cols.9)),
        ];
        let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| VdbError::internal(e.to_string()))?;
        writer.write(&batch).map_err(perr)?;
        written += n as u64;
    }
    writer.close().map_err(perr)?;
    let size_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(SampleInfo { path: path.display().to_string(), rows: written, filings, size_bytes })
}

/// Consecutive yearly 10-K filings of every sample company: `years` fiscal years ending 2024, each
/// filing `rows / (companies x years)` sentences (at least 1). Each year keeps every sentence of the
/// company's previous filing with probability `1 - change_rate` and replaces the others with new
/// ones, as filings repeat themselves year after year: the input of `vdb changes`.
pub fn write_yearly(path: &Path, rows: u64, seed: u64, years: u32, change_rate: f64) -> Result<SampleInfo> {
    if !(0.0..=1.0).contains(&change_rate) || years == 0 {
        return Err(VdbError::new(
            ErrorKind::InvalidConfig,
            format!(
                "yearly filings need at least 1 year and a change rate between 0 and 1 (got {years}, {change_rate})"
            ),
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| VdbError::io(dir, "cannot create directory", e))?;
    }
    let per_filing = (rows / (COMPANIES.len() as u64 * u64::from(years))).max(1) as usize;
    let mut rng = Rng(seed ^ 0x07EA_21E5);
    let mut cols: Columns = Default::default();
    let mut filings = 0u64;
    for (c, company) in COMPANIES.iter().enumerate() {
        let mut previous: Vec<String> = Vec::new();
        for k in 0..years {
            let year = 2024 - (years - 1 - k) as i32;
            filings += 1;
            let mut texts: Vec<String> = previous
                .iter()
                .filter(|_| ((rng.next() >> 11) as f64 / (1u64 << 53) as f64) >= change_rate)
                .cloned()
                .collect();
            while texts.len() < per_filing {
                let t = sentence(&mut rng, company.0, year);
                if !texts.contains(&t) {
                    texts.push(t);
                }
            }
            let fid = format!("{:010}-{:02}-{:06}", company.1, year % 100 + 1, c);
            let date = (year - 1970 + 1) * 365 + (year - 1969 + 1) / 4 + 40 + rng.below(60) as i32;
            for (i, t) in texts.iter().enumerate() {
                cols.0.push(fid.clone());
                cols.1.push(company.1);
                cols.2.push(company.0);
                cols.3.push(company.2);
                cols.4.push("10-K");
                cols.5.push(date);
                cols.6.push(year);
                cols.7.push("Item 1A. Risk Factors");
                cols.8.push(i as i32);
                cols.9.push(t.clone());
            }
            previous = texts;
        }
    }
    let written = cols.0.len() as u64;
    let schema = sample_schema();
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(cols.0)),
        Arc::new(Int64Array::from(cols.1)),
        Arc::new(StringArray::from(cols.2)),
        Arc::new(StringArray::from(cols.3)),
        Arc::new(StringArray::from(cols.4)),
        Arc::new(Date32Array::from(cols.5)),
        Arc::new(Int32Array::from(cols.6)),
        Arc::new(StringArray::from(cols.7)),
        Arc::new(Int32Array::from(cols.8)),
        Arc::new(StringArray::from(cols.9)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| VdbError::internal(e.to_string()))?;
    let perr = |e: parquet::errors::ParquetError| {
        VdbError::new(ErrorKind::Io, format!("cannot write {}: {e}", path.display())).with_file(path)
    };
    let file = File::create(path).map_err(|e| VdbError::io(path, "cannot create", e))?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(perr)?;
    writer.write(&batch).map_err(perr)?;
    writer.close().map_err(perr)?;
    let size_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(SampleInfo { path: path.display().to_string(), rows: written, filings, size_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rows_and_ids_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("b.parquet");
        let info = write_sample(&a, 1234, 7).unwrap();
        assert_eq!(info.rows, 1234);
        write_sample(&b, 1234, 7).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let mut src = crate::source::reader::ParquetSource::open(&a).unwrap();
        let m = src.resolve(&Default::default()).unwrap();
        let mut keys = std::collections::HashSet::new();
        for item in src.stream(&m).unwrap() {
            let (_, batch) = item.unwrap();
            let fid = batch.column_by_name("filing_id").unwrap();
            let fid = fid.as_any().downcast_ref::<StringArray>().unwrap();
            let si = batch.column_by_name("sentence_index").unwrap();
            let si = si.as_any().downcast_ref::<Int32Array>().unwrap();
            for i in 0..batch.num_rows() {
                assert!(keys.insert((fid.value(i).to_string(), si.value(i))), "duplicate key");
            }
        }
        assert_eq!(keys.len(), 1234);
    }

    #[test]
    fn yearly_filings_keep_the_asked_share_of_last_years_sentences() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("y.parquet");
        let info = write_yearly(&p, 20 * 3 * 200, 5, 3, 0.3).unwrap();
        assert_eq!((info.rows, info.filings), (20 * 3 * 200, 60));
        let mut src = crate::source::reader::ParquetSource::open(&p).unwrap();
        let m = src.resolve(&Default::default()).unwrap();
        let mut by_filing: std::collections::BTreeMap<(String, i32), std::collections::HashSet<String>> =
            Default::default();
        for item in src.stream(&m).unwrap() {
            let (_, batch) = item.unwrap();
            let col = |n: &str| batch.column_by_name(n).unwrap().clone();
            let (t, y, s) = (col("ticker"), col("fiscal_year"), col("sentence"));
            let t = t.as_any().downcast_ref::<StringArray>().unwrap();
            let y = y.as_any().downcast_ref::<Int32Array>().unwrap();
            let s = s.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..batch.num_rows() {
                by_filing.entry((t.value(i).to_string(), y.value(i))).or_default().insert(s.value(i).to_string());
            }
        }
        assert_eq!(by_filing.keys().map(|k| k.1).collect::<std::collections::BTreeSet<_>>(), [2022, 2023, 2024].into());
        let (mut kept, mut total) = (0, 0);
        for ((ticker, year), texts) in &by_filing {
            assert_eq!(texts.len(), 200, "{ticker} {year}: distinct sentences");
            if let Some(before) = by_filing.get(&(ticker.clone(), year - 1)) {
                kept += texts.intersection(before).count();
                total += before.len();
            }
        }
        let share = kept as f64 / total as f64;
        assert!((0.65..0.75).contains(&share), "kept {share:.3} of last year's sentences, asked 0.7");
    }
}
