//! Text detection: PP-OCRv4's DB (Differentiable Binarization) model and
//! its post-processing, following PaddleOCR's `DBPostProcess`
//! (<https://arxiv.org/abs/1911.08947>).

use image::RgbImage;
use tract_onnx::prelude::*;

use crate::geom::{inside_convex, min_area_rect, Point, Quad};

/// Detection parameters (PaddleOCR's defaults for PP-OCRv4 where not noted).
#[derive(Debug, Clone)]
pub struct DetOptions {
    /// The longer side is scaled down to at most this many pixels (then
    /// rounded to a multiple of 32, as the network needs).
    pub limit_side: u32,
    /// Probability above which a pixel is text.
    pub thresh: f32,
    /// Mean probability a box needs to be kept.
    pub box_thresh: f32,
    /// How far a shrunk text kernel is grown back (area × ratio / perimeter).
    pub unclip_ratio: f32,
    /// Boxes whose short side is below this (in network pixels) are noise.
    pub min_size: f32,
    /// At most this many candidate regions are examined.
    pub max_candidates: usize,
}

impl Default for DetOptions {
    fn default() -> Self {
        Self {
            limit_side: 960,
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            min_size: 3.0,
            max_candidates: 1000,
        }
    }
}

// ImageNet statistics, as PaddleOCR's det `NormalizeImage` uses, applied to
// the channels in OpenCV's BGR order like the training pipeline.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Scales `img` for the network and returns the input tensor, padded (with
/// the mean colour) to multiples of 128 so few distinct shapes reach the
/// model, and the size of the scaled image inside it.
pub(crate) fn preprocess(img: &RgbImage, limit: u32) -> (Tensor, usize, usize) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let ratio = if w.max(h) > limit as f32 {
        limit as f32 / w.max(h)
    } else {
        1.0
    };
    let rw = (((w * ratio) / 32.0).round() as u32).max(1) * 32;
    let rh = (((h * ratio) / 32.0).round() as u32).max(1) * 32;
    let resized = crate::scaled(img, rw, rh, fast_image_resize::FilterType::Bilinear);
    let (ph, pw) = (rh.div_ceil(128) * 128, rw.div_ceil(128) * 128);
    (on_canvas(&resized, ph, pw), rh as usize, rw as usize)
}

/// `img` as the network's input at the top left of a `ph × pw` canvas
/// (multiples of 32, at least the image's size) padded with the mean
/// colour: a fixed canvas keeps the number of input shapes down.
pub(crate) fn on_canvas(img: &RgbImage, ph: u32, pw: u32) -> Tensor {
    let (w, h) = (img.width(), img.height());
    tract_ndarray::Array4::from_shape_fn((1, 3, ph as usize, pw as usize), |(_, c, y, x)| {
        if x as u32 >= w || y as u32 >= h {
            return 0.0;
        }
        let v = img.get_pixel(x as u32, y as u32).0[2 - c] as f32 / 255.0;
        (v - MEAN[c]) / STD[c]
    })
    .into_tensor()
}

/// Turns the probability map (`[1, 1, H, W]`) into text boxes in the
/// coordinates of an image of `orig_w × orig_h`, with their scores.
pub(crate) fn boxes_from_map(
    map: &tract_ndarray::ArrayViewD<'_, f32>,
    orig_w: u32,
    orig_h: u32,
    (h, w): (usize, usize),
    opt: &DetOptions,
) -> Vec<(Quad, f32)> {
    let shape = map.shape();
    if shape.len() != 4 || shape[2] < h || shape[3] < w {
        return Vec::new();
    }
    let prob = |x: usize, y: usize| map[[0, 0, y, x]];
    // Binarize, then dilate with a 2×2 kernel (RapidOCR's `use_dilation`)
    // so characters of a line join up.
    let mut bin = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let on = |xx: usize, yy: usize| prob(xx, yy) > opt.thresh;
            bin[y * w + x] = on(x, y)
                || (x > 0 && on(x - 1, y))
                || (y > 0 && on(x, y - 1))
                || (x > 0 && y > 0 && on(x - 1, y - 1));
        }
    }
    let mut label = vec![0u32; w * h];
    let mut out = Vec::new();
    let mut next = 0u32;
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !bin[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        if next as usize > opt.max_candidates {
            break;
        }
        // Flood fill (8-connected); keep the border pixels, which are all the
        // convex hull needs.
        let mut border = Vec::new();
        label[start] = next;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            let mut is_border = false;
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    if dx == 0 && dy == 0 {
                        continue;
                    }
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        is_border = true;
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if !bin[j] {
                        is_border = true;
                    } else if label[j] == 0 {
                        label[j] = next;
                        stack.push(j);
                    }
                }
            }
            if is_border {
                border.push((x as i32, y as i32));
            }
        }
        let Some(rect) = min_area_rect(border) else {
            continue;
        };
        if rect.short_side() < opt.min_size {
            continue;
        }
        let score = box_score(map, &rect.quad(), w, h);
        if score < opt.box_thresh {
            continue;
        }
        let (bw, bh) = (2.0 * rect.half_w, 2.0 * rect.half_h);
        let d = bw * bh * opt.unclip_ratio / (2.0 * (bw + bh)).max(1e-6);
        let grown = rect.grown(d);
        if grown.short_side() < opt.min_size + 2.0 {
            continue;
        }
        let sx = orig_w as f32 / w as f32;
        let sy = orig_h as f32 / h as f32;
        let mut q = grown.quad();
        for p in &mut q.0 {
            *p = Point::new(
                (p.x * sx).round().clamp(0.0, orig_w as f32),
                (p.y * sy).round().clamp(0.0, orig_h as f32),
            );
        }
        out.push((q, score));
    }
    out
}

/// Mean probability inside the box ("fast" score mode).
fn box_score(map: &tract_ndarray::ArrayViewD<'_, f32>, q: &Quad, w: usize, h: usize) -> f32 {
    let x0 = q.left().floor().clamp(0.0, (w - 1) as f32) as usize;
    let x1 = q.right().ceil().clamp(0.0, (w - 1) as f32) as usize;
    let y0 = q.top().floor().clamp(0.0, (h - 1) as f32) as usize;
    let y1 = q.bottom().ceil().clamp(0.0, (h - 1) as f32) as usize;
    let (mut sum, mut n) = (0.0f32, 0u32);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if inside_convex(q, Point::new(x as f32, y as f32)) {
                sum += map[[0, 0, y, x]];
                n += 1;
            }
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f32
    }
}
