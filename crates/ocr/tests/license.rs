//! End-to-end: generated business licenses → OCR → fields.
//!
//! Needs the models (`scripts/fetch-ocr-models.sh`, or `OCR_MODELS_DIR`).
//! Without them the test prints `SKIPPED:` and passes, except under
//! `CI=true`, where missing models fail it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use certhall_ocr::synth::{evaluate, Renderer, DEFAULT_FONT};
use certhall_ocr::{Ocr, OcrError};

fn models_dir() -> PathBuf {
    std::env::var_os("OCR_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/ocr"))
}

fn load() -> Option<Ocr> {
    match Ocr::load(models_dir()) {
        Ok(ocr) => Some(ocr),
        Err(OcrError::ModelsMissing(p)) if std::env::var("CI").as_deref() != Ok("true") => {
            certhall_store::testing::report_skip(&format!(
                "OCR models not found ({}); run scripts/fetch-ocr-models.sh",
                p.display()
            ));
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn missing_models_are_reported_as_such() {
    let err = Ocr::load("/nonexistent/models").unwrap_err();
    assert!(matches!(err, OcrError::ModelsMissing(_)), "{err}");
}

#[test]
fn reads_generated_licenses() {
    let Some(ocr) = load() else { return };
    assert_eq!(
        ocr.dictionary_len(),
        6625,
        "blank + 6623 characters + space"
    );
    let renderer = Renderer::load(DEFAULT_FONT).unwrap();
    let n = std::env::var("OCR_TEST_LICENSES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let report = evaluate(&ocr, &renderer, n, 7).unwrap();
    for (field, want, got) in &report.misses {
        println!("miss {field}: want {want:?} got {got:?}");
    }
    println!(
        "{} licenses, {:.1}% of fields right, {:.0} ms per license",
        report.licenses,
        100.0 * report.accuracy(),
        report.per_license().as_secs_f64() * 1000.0
    );
    assert!(
        report.accuracy() >= 0.95,
        "field accuracy {:.3}",
        report.accuracy()
    );
}

#[test]
fn ocr_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ocr>();
}

/// A license photographed sideways or upside down is turned upright
/// before it is read: each quarter turn is found, and the fields read are
/// those of the same license taken the right way up.
#[test]
fn turned_licenses_are_read_upright() {
    use rand::SeedableRng;
    let Some(ocr) = load() else { return };
    let renderer = Renderer::load(DEFAULT_FONT).unwrap();
    for seed in [11u64, 29] {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (img, printed) = renderer
            .random_license(&mut rng, &certhall_ocr::synth::Degrade::default())
            .unwrap();
        let (upright, _) = ocr.read_lines_upright(&img).unwrap();
        let want = certhall_ocr::read_business_license(&upright);
        assert_eq!(want.uscc, printed.uscc, "seed {seed}: the upright reading");
        for turns in 1..4u8 {
            let turned = match turns {
                1 => img.rotate90(),
                2 => img.rotate180(),
                _ => img.rotate270(),
            };
            let (lines, applied) = ocr.read_lines_upright(&turned).unwrap();
            assert_eq!(
                (turns + applied) % 4,
                0,
                "seed {seed}: turned {turns} quarter(s), turned back {applied}"
            );
            assert_eq!(
                certhall_ocr::read_business_license(&lines),
                want,
                "seed {seed}, {turns} quarter turn(s)"
            );
        }
    }
}
