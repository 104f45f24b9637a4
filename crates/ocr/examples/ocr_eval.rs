//! Accuracy and speed of the business-license OCR on the independent
//! evaluation corpus (`scripts/license-corpus.sh`: images drawn by a
//! separate Python generator in six Debian CJK fonts, with wraps,
//! rotations, perspective, blur, JPEG and lighting).
//!
//! ```text
//! scripts/fetch-ocr-models.sh && scripts/license-corpus.sh
//! cargo build --release -p certhall-ocr --example ocr_eval
//! taskset -c 0 target/release/examples/ocr_eval target/license-corpus/heldout
//! ```
//! Options: `--models DIR` (default `models/ocr`), `--jobs N` (threads;
//! timing is only meaningful with one), `--misses` (print every miss),
//! `--limit N` (first N images).
//!
//! Reads every image the way CertHall does (decode, turn upright, read,
//! pick the fields, judge license or not) and compares with `truth.jsonl`
//! after normalisation: brackets and punctuation full-width (as printed),
//! spaces dropped, dates ISO.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use certhall_domain::wizard::{vet_license_reading, LicenseVerdict};
use certhall_ocr::{domain_reading, read_license, Ocr, Point, Quad, TextLine};
use serde_json::Value;

const FIELDS: [&str; 7] = [
    "name",
    "uscc",
    "kind",
    "legal_representative",
    "address",
    "registered_capital",
    "established",
];

/// What one image gave.
struct Outcome {
    truth: Value,
    /// `(field, want, got, marked unsure)`.
    fields: Vec<(&'static str, String, String, bool)>,
    filled: bool,
    turns: u8,
    took: Duration,
    max_side: u32,
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '(' => '（',
            ')' => '）',
            ',' => '，',
            ':' => '：',
            ';' => '；',
            c => c,
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dir = None;
    let mut models = PathBuf::from("models/ocr");
    let mut jobs = 1usize;
    let mut show_misses = false;
    let mut limit = usize::MAX;
    let mut cache: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--models" => models = args.next().expect("--models DIR").into(),
            "--jobs" => jobs = args.next().expect("--jobs N").parse()?,
            "--limit" => limit = args.next().expect("--limit N").parse()?,
            "--misses" => show_misses = true,
            "--cache" => cache = Some(PathBuf::from(args.next().expect("--cache DIR"))),
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let dir = dir.ok_or("usage: ocr_eval CORPUS_SPLIT_DIR [--models DIR] [--jobs N]")?;
    let truth: Vec<Value> = std::fs::read_to_string(dir.join("truth.jsonl"))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let truth: Vec<Value> = truth.into_iter().take(limit).collect();
    let ocr = Ocr::load(&models)?;
    // Untimed warm-up: the models are optimised per input shape on first
    // use, once per process.
    if cache.is_none() {
        let first = std::fs::read(dir.join(truth[0]["file"].as_str().unwrap()))?;
        ocr.read_license_image(&first)?;
    }

    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(t) = truth.get(i) else { break };
                let file = t["file"].as_str().unwrap();
                let (lines, turns, took) = match cached(&cache, file) {
                    Some(hit) => hit,
                    None => {
                        let bytes = std::fs::read(dir.join(file)).unwrap();
                        // Timed as the server runs it: decode, turn, read.
                        let start = Instant::now();
                        let img = image::load_from_memory(&bytes).unwrap();
                        let (lines, turns) = ocr.read_license_lines(&img).unwrap();
                        let took = start.elapsed();
                        store(&cache, file, &lines, turns, took);
                        (lines, turns, took)
                    }
                };
                let reading = domain_reading(read_license(&lines));
                let verdict = vet_license_reading(reading);
                let (filled, got, unsure) = match verdict {
                    LicenseVerdict::License { fields, unsure, .. } => (true, *fields, unsure),
                    LicenseVerdict::NotALicense => (false, Default::default(), Vec::new()),
                };
                let got_of = |f: &str| -> String {
                    match f {
                        "name" => got.name.clone(),
                        "uscc" => got.uscc.clone(),
                        "kind" => got.kind.clone(),
                        "legal_representative" => got.legal_representative.clone(),
                        "address" => got.address.clone(),
                        "registered_capital" => got.registered_capital.clone(),
                        _ => got.established.clone(),
                    }
                };
                let fields = FIELDS
                    .iter()
                    .map(|&f| {
                        let want = t["fields"][f].as_str().unwrap_or_default();
                        (
                            f,
                            norm(want),
                            norm(&got_of(f)),
                            unsure.iter().any(|u| u == f),
                        )
                    })
                    .collect();
                let max_side = t["width"]
                    .as_u64()
                    .unwrap_or(0)
                    .max(t["height"].as_u64().unwrap_or(0)) as u32;
                outcomes.lock().unwrap().push(Outcome {
                    truth: t.clone(),
                    fields,
                    filled,
                    turns,
                    took,
                    max_side,
                });
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by(|a, b| a.truth["file"].as_str().cmp(&b.truth["file"].as_str()));
    report(&outcomes, show_misses);
    Ok(())
}

/// `--cache DIR`: the OCR lines of each image, kept so that work on the
/// field picking can be re-measured in seconds (timings are those of the
/// run that filled the cache).
fn cache_file(cache: &Option<PathBuf>, file: &str) -> Option<PathBuf> {
    cache.as_ref().map(|d| d.join(format!("{file}.json")))
}

fn cached(cache: &Option<PathBuf>, file: &str) -> Option<(Vec<TextLine>, u8, Duration)> {
    let v: Value = serde_json::from_slice(&std::fs::read(cache_file(cache, file)?).ok()?).ok()?;
    let lines = v["lines"]
        .as_array()?
        .iter()
        .map(|l| {
            let q: Vec<f32> = l["quad"]
                .as_array()?
                .iter()
                .filter_map(|x| x.as_f64().map(|x| x as f32))
                .collect();
            (q.len() == 8).then(|| TextLine {
                text: l["text"].as_str().unwrap_or_default().to_owned(),
                confidence: l["confidence"].as_f64().unwrap_or(0.0) as f32,
                bbox: Quad([
                    Point::new(q[0], q[1]),
                    Point::new(q[2], q[3]),
                    Point::new(q[4], q[5]),
                    Point::new(q[6], q[7]),
                ]),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((
        lines,
        v["turns"].as_u64()? as u8,
        Duration::from_micros(v["micros"].as_u64()?),
    ))
}

fn store(cache: &Option<PathBuf>, file: &str, lines: &[TextLine], turns: u8, took: Duration) {
    let Some(path) = cache_file(cache, file) else {
        return;
    };
    let lines: Vec<Value> = lines
        .iter()
        .map(|l| {
            serde_json::json!({
                "text": l.text,
                "confidence": l.confidence,
                "quad": l.bbox.0.iter().flat_map(|p| [p.x, p.y]).collect::<Vec<f32>>(),
            })
        })
        .collect();
    let v = serde_json::json!({"lines": lines, "turns": turns, "micros": took.as_micros() as u64});
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn pct(a: usize, b: usize) -> String {
    if b == 0 {
        "—".into()
    } else {
        format!("{:.1}% ({a}/{b})", 100.0 * a as f64 / b as f64)
    }
}

fn report(outcomes: &[Outcome], show_misses: bool) {
    let licenses: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.truth["is_license"].as_bool() == Some(true))
        .collect();
    let others: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.truth["is_license"].as_bool() != Some(true))
        .collect();
    let mut per_field: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut per_layout: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut right, mut all) = (0, 0);
    let (mut wrong_marked, mut wrong_unmarked, mut right_marked) = (0, 0, 0);
    let mut wrapped = (0, 0);
    for o in &licenses {
        let layout = o.truth["layout"].as_str().unwrap_or("?").to_owned();
        let wraps: Vec<&str> = o.truth["wrapped"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (f, want, got, marked) in &o.fields {
            let ok = want == got;
            all += 1;
            right += ok as usize;
            let e = per_field.entry(f).or_default();
            e.0 += ok as usize;
            e.1 += 1;
            let e = per_layout.entry(layout.clone()).or_default();
            e.0 += ok as usize;
            e.1 += 1;
            if wraps.contains(f) {
                wrapped.0 += ok as usize;
                wrapped.1 += 1;
            }
            match (ok, marked) {
                (false, true) => wrong_marked += 1,
                (false, false) => wrong_unmarked += 1,
                (true, true) => right_marked += 1,
                _ => {}
            }
            if !ok && show_misses {
                println!(
                    "miss {} [{layout}, rot {}, {}] {f}{}: want {want:?} got {got:?}",
                    o.truth["file"].as_str().unwrap_or("?"),
                    o.truth["rotation"],
                    o.truth["font"].as_str().unwrap_or("?"),
                    if *marked { " (请核对)" } else { "" },
                );
            }
        }
    }
    println!(
        "images: {} ({} licenses, {} not licenses)",
        outcomes.len(),
        licenses.len(),
        others.len()
    );
    println!("fields exactly right: {}", pct(right, all));
    for (f, (r, n)) in &per_field {
        println!("  {f:<22} {}", pct(*r, *n));
    }
    for (l, (r, n)) in &per_layout {
        println!("  layout {l:<16} {}", pct(*r, *n));
    }
    println!("  wrapped values       {}", pct(wrapped.0, wrapped.1));
    println!(
        "misses marked 请核对: {}; right but marked: {right_marked}",
        pct(wrong_marked, wrong_marked + wrong_unmarked)
    );
    // Orientation: the generator turned the image `rotation` degrees
    // counter-clockwise (PIL's ROTATE_90 …); the reader's clockwise
    // quarter turns undo that exactly when they are the same number.
    let rotated: Vec<&&Outcome> = licenses
        .iter()
        .filter(|o| o.truth["rotation"].as_u64().unwrap_or(0) != 0)
        .collect();
    let upright_ok = |o: &Outcome| {
        let rot = (o.truth["rotation"].as_u64().unwrap_or(0) / 90) as u8 % 4;
        o.turns % 4 == rot
    };
    let rot_right = rotated.iter().filter(|o| upright_ok(o)).count();
    let upright = licenses
        .iter()
        .filter(|o| o.truth["rotation"].as_u64() == Some(0));
    let upright_kept = upright.clone().filter(|o| o.turns == 0).count();
    println!(
        "orientation: rotated images turned right {}; upright images left upright {}",
        pct(rot_right, rotated.len()),
        pct(upright_kept, upright.count())
    );
    for o in &rotated {
        if !upright_ok(o) {
            println!(
                "  turned wrong: {} rotation {} turns {}",
                o.truth["file"].as_str().unwrap_or("?"),
                o.truth["rotation"],
                o.turns
            );
        }
    }
    let filled = others.iter().filter(|o| o.filled).count();
    println!("not-license images filled: {filled} of {}", others.len());
    for o in others.iter().filter(|o| o.filled) {
        println!(
            "  filled: {} ({})",
            o.truth["file"].as_str().unwrap_or("?"),
            o.truth["subject"]
        );
    }
    let unfilled = licenses.iter().filter(|o| !o.filled).count();
    println!("licenses refused as not a license: {unfilled}");
    let times = |v: Vec<Duration>| {
        let mut v = v;
        v.sort();
        let n = v.len().max(1);
        let mean = v.iter().sum::<Duration>() / n as u32;
        let p50 = v.get(v.len() / 2).copied().unwrap_or_default();
        let max = v.last().copied().unwrap_or_default();
        format!(
            "mean {:.0} ms, median {:.0} ms, max {:.0} ms (n={})",
            mean.as_secs_f64() * 1e3,
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            v.len()
        )
    };
    println!(
        "time per image: {}",
        times(outcomes.iter().map(|o| o.took).collect())
    );
    println!(
        "time per 4000 px photo: {}",
        times(
            outcomes
                .iter()
                .filter(|o| o.max_side >= 4000)
                .map(|o| o.took)
                .collect()
        )
    );
}
