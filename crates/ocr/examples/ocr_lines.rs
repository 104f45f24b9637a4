//! Prints the lines a license image gives and the fields picked from
//! them: for looking into one reading.
//!
//! `cargo run --release -p certhall-ocr --example ocr_lines -- IMAGE [MODELS_DIR]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: ocr_lines IMAGE [MODELS_DIR]")?;
    let models = args.next().unwrap_or_else(|| "models/ocr".to_owned());
    let mut ocr = certhall_ocr::Ocr::load(models)?;
    // Detection parameters to try: DET_LIMIT, DET_THRESH, DET_BOX_THRESH, DET_UNCLIP.
    let mut opt = certhall_ocr::DetOptions::default();
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f32>().ok());
    if let Some(v) = env("DET_LIMIT") {
        opt.limit_side = v as u32;
    }
    if let Some(v) = env("DET_THRESH") {
        opt.thresh = v;
    }
    if let Some(v) = env("DET_BOX_THRESH") {
        opt.box_thresh = v;
    }
    if let Some(v) = env("DET_UNCLIP") {
        opt.unclip_ratio = v;
    }
    ocr = ocr.with_det_options(opt);
    let img = image::open(&path)?;
    let (mut lines, turns) = if std::env::var_os("ALL_LINES").is_some() {
        ocr.read_lines_upright(&img)?
    } else {
        ocr.read_license_lines(&img)?
    };
    println!("quarter turns: {turns}");
    lines.sort_by(|a, b| a.bbox.center().y.total_cmp(&b.bbox.center().y));
    for l in &lines {
        println!(
            "y {:6.0} x {:6.0}..{:6.0} h {:4.0} conf {:.2} {}",
            l.bbox.center().y,
            l.bbox.left(),
            l.bbox.right(),
            l.bbox.height(),
            l.confidence,
            l.text
        );
    }
    let read = certhall_ocr::read_license(&lines);
    println!("{:#?}\nunsure: {:?}", read.fields, read.unsure());
    Ok(())
}
