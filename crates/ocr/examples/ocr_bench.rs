//! Accuracy and speed of the business-license OCR on generated licenses.
//!
//! ```text
//! scripts/fetch-ocr-models.sh
//! cargo run --release -p certhall-ocr --example ocr_bench -- [N] [MODELS_DIR]
//! ```
//! For the one-core figure: `taskset -c 0 target/release/examples/ocr_bench`
//! (tract runs single-threaded anyway).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use certhall_ocr::synth::{evaluate, Renderer, DEFAULT_FONT};
use certhall_ocr::Ocr;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50);
    let dir = args.next().unwrap_or_else(|| "models/ocr".to_owned());
    let start = std::time::Instant::now();
    let ocr = Ocr::load(&dir)?;
    println!("models loaded in {:.2?}", start.elapsed());
    let renderer = Renderer::load(DEFAULT_FONT)?;
    // One license first, untimed: the models are optimised for each input
    // shape on first use.
    let warm = std::time::Instant::now();
    evaluate(&ocr, &renderer, 1, 999)?;
    println!(
        "first license (shape optimisation included): {:.2?}",
        warm.elapsed()
    );
    let r = evaluate(&ocr, &renderer, n, 1)?;
    for (field, want, got) in &r.misses {
        println!("miss {field}: want {want:?} got {got:?}");
    }
    println!(
        "licenses: {}  fields right: {}/{} = {:.1}%  time per license: {:.0} ms (slowest {:.0} ms)",
        r.licenses,
        r.correct,
        r.fields,
        100.0 * r.accuracy(),
        r.per_license().as_secs_f64() * 1000.0,
        r.slowest.as_secs_f64() * 1000.0
    );
    Ok(())
}
