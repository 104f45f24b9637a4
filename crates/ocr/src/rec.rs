//! Text recognition: PP-OCRv6 small's SVTR-LCNet model on one cropped
//! line, decoded with CTC greedy search
//! (<https://arxiv.org/abs/2205.00159>).

use std::collections::HashMap;
use std::sync::OnceLock;

use image::RgbImage;
use tract_onnx::prelude::*;

/// The recogniser is multilingual and reads some simplified characters
/// printed in a brush font as their traditional forms (区 as 區). Licenses
/// of the mainland are printed in simplified characters, so each
/// dictionary entry with exactly one simplified form is read as that form.
/// The table is OpenCC's (see `scripts/ocr-fold-table.py`).
pub(crate) fn simplified(entry: &str) -> &str {
    static TABLE: OnceLock<HashMap<char, &'static str>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        include_str!("../data/traditional-to-simplified.txt")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let mut cs = l.char_indices();
                let (_, t) = cs.next()?;
                let (at, _) = cs.next()?;
                Some((t, &l[at..]))
            })
            .collect()
    });
    let mut cs = entry.chars();
    match (cs.next(), cs.next()) {
        (Some(c), None) => table.get(&c).copied().unwrap_or(entry),
        _ => entry,
    }
}

/// The network's input height.
pub(crate) const HEIGHT: u32 = 48;
/// The narrowest input width PaddleOCR uses (rec_image_shape 3×48×320).
pub(crate) const MIN_WIDTH: u32 = 96;
/// Input widths are padded to a multiple of this.
pub(crate) const WIDTH_STEP: u32 = 64;

/// Builds a `[n, 3, 48, W]` batch: each crop scaled to height 48 keeping its
/// aspect, normalised to [-1, 1] in BGR order, padded with zeros on the
/// right to the widest of the batch (as PaddleOCR's `resize_norm_img`).
pub(crate) fn batch_tensor(crops: &[&RgbImage]) -> Tensor {
    let ratio = |c: &RgbImage| c.width() as f32 / c.height().max(1) as f32;
    let max_ratio = crops
        .iter()
        .map(|c| ratio(c))
        .fold(MIN_WIDTH as f32 / HEIGHT as f32, f32::max);
    // Rounded up to a multiple of WIDTH_STEP: each width is a model shape.
    let width = ((HEIGHT as f32 * max_ratio) as u32).div_ceil(WIDTH_STEP) * WIDTH_STEP;
    let mut t =
        tract_ndarray::Array4::<f32>::zeros((crops.len(), 3, HEIGHT as usize, width as usize));
    for (i, crop) in crops.iter().enumerate() {
        let rw = ((HEIGHT as f32 * ratio(crop)).ceil() as u32).clamp(1, width);
        let resized =
            image::imageops::resize(*crop, rw, HEIGHT, image::imageops::FilterType::Triangle);
        for (x, y, px) in resized.enumerate_pixels() {
            for c in 0..3 {
                t[[i, c, y as usize, x as usize]] = px.0[2 - c] as f32 / 127.5 - 1.0;
            }
        }
    }
    t.into_tensor()
}

/// CTC greedy decode of one `[T, C]` probability sequence: best class per
/// step, repeats merged, blanks (class 0) dropped. Returns the text and the
/// mean probability of the kept characters.
pub(crate) fn ctc_decode(
    probs: tract_ndarray::ArrayView2<'_, f32>,
    dict: &[String],
) -> (String, f32) {
    let mut text = String::new();
    let (mut conf_sum, mut n) = (0.0f32, 0u32);
    let mut prev = 0usize;
    for row in probs.rows() {
        let (best, p) = row
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0usize, f32::MIN),
                |acc, (i, v)| if v > acc.1 { (i, v) } else { acc },
            );
        if best != 0 && best != prev {
            if let Some(ch) = dict.get(best) {
                text.push_str(ch);
                conf_sum += p;
                n += 1;
            }
        }
        prev = best;
    }
    let conf = if n == 0 { 0.0 } else { conf_sum / n as f32 };
    (text, conf)
}

#[cfg(test)]
mod tests {
    use super::simplified;

    #[test]
    fn traditional_entries_read_as_simplified() {
        assert_eq!(simplified("區"), "区");
        assert_eq!(simplified("號"), "号");
        assert_eq!(simplified("車"), "车");
        // Already simplified, or in simplified use as well: unchanged.
        assert_eq!(simplified("区"), "区");
        assert_eq!(simplified("乾"), "乾");
        assert_eq!(simplified("堌"), "堌");
        assert_eq!(simplified("A"), "A");
        assert_eq!(simplified(""), "");
    }
}
