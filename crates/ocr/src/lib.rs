//! Business-license (营业执照) OCR for the enterprise identity step.
//!
//! Runs PaddleOCR's PP-OCRv4 text detection (DB) and PP-OCRv6 small
//! recognition (SVTR, CTC) models in-process with
//! [tract](https://github.com/sonos/tract), a pure-Rust ONNX runtime: no
//! Python, no native library, no network. The models come from the PyPI
//! packages `rapidocr_onnxruntime` (detection) and `rapidocr` (recognition)
//! and are put in place by `scripts/fetch-ocr-models.sh`; the recognition
//! dictionary is read from the recognition model's ONNX metadata
//! (`character`), its traditional characters folded to simplified ones.
//!
//! [`Ocr::read_lines`] turns an image into text lines;
//! [`read_business_license`] picks the license's fields out of those lines.
//! Both are pure: no HTTP, no storage, no clock.

mod det;
mod geom;
mod license;
mod rec;
#[cfg(feature = "synth")]
pub mod synth;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{DynamicImage, RgbImage};
use tract_onnx::prelude::*;

pub use det::DetOptions;
pub use geom::{Point, Quad};
pub use license::{
    read_business_license, read_license, uscc_is_valid, LicenseFields, LicenseRead, UNSURE_BELOW,
};

/// File name of the detection model inside the models directory.
pub const DET_MODEL: &str = "ch_PP-OCRv4_det_infer.onnx";
/// File name of the recognition model inside the models directory.
pub const REC_MODEL: &str = "PP-OCRv6_rec_small.onnx";

/// Why OCR could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    /// The model files are not there: OCR is unavailable, the user types.
    #[error("OCR models not found at {0} (run scripts/fetch-ocr-models.sh)")]
    ModelsMissing(PathBuf),
    /// A model file is there but cannot be loaded.
    #[error("cannot load OCR model {path}: {detail}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// What tract said.
        detail: String,
    },
    /// The recognition model carries no usable dictionary.
    #[error("OCR model {0} has no character dictionary in its metadata")]
    Dictionary(PathBuf),
    /// Running a model failed.
    #[error("OCR inference failed: {0}")]
    Inference(String),
}

/// One recognised line of text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLine {
    /// The text as read.
    pub text: String,
    /// Mean probability of its characters, 0–1.
    pub confidence: f32,
    /// Where it is in the image.
    pub bbox: Quad,
}

type Plan = Arc<TypedRunnableModel>;

/// The loaded models. Loading takes a moment; build one and share it
/// (`Ocr` is `Send + Sync`, and [`Ocr::read_lines`] takes `&self`).
pub struct Ocr {
    det: Concretized,
    rec: Concretized,
    /// Class index → character: 0 is the CTC blank, the last is a space.
    dict: Vec<String>,
    det_options: DetOptions,
}

impl std::fmt::Debug for Ocr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ocr")
            .field("dict_len", &self.dict.len())
            .field("det_options", &self.det_options)
            .finish_non_exhaustive()
    }
}

/// How many lines go through the recogniser in one run. One: batching
/// gains little on a CPU, and every batch size would be one more shape to
/// optimise the model for.
const REC_BATCH: usize = 1;
/// A phone photo is scaled down to this longer side before anything else:
/// a license filling a 4000 px photo still has text 30 px tall at this
/// size (the recogniser reads lines at 48 px), and detection, cropping
/// and turning work on well under half the pixels.
pub const MAX_SIDE: u32 = 2560;

/// `image` as RGB, scaled down (area-averaging) when its longer side is
/// over [`MAX_SIDE`].
fn within_max_side(image: &DynamicImage) -> RgbImage {
    let (w, h) = (image.width(), image.height());
    if w.max(h) <= MAX_SIDE {
        return image.to_rgb8();
    }
    let scale = MAX_SIDE as f32 / w.max(h) as f32;
    let (nw, nh) = (
        ((w as f32 * scale).round() as u32).max(1),
        ((h as f32 * scale).round() as u32).max(1),
    );
    let converted;
    let rgb = match image.as_rgb8() {
        Some(rgb) => rgb,
        None => {
            converted = image.to_rgb8();
            &converted
        }
    };
    scaled(rgb, nw, nh, fast_image_resize::FilterType::Box)
}

/// `img` scaled to `w × h` by convolution with `filter`, its support
/// widened when scaling down (so `Box` averages areas). SIMD: image's own
/// resizing took a tenth of the time of reading a phone photo.
pub(crate) fn scaled(
    img: &RgbImage,
    w: u32,
    h: u32,
    filter: fast_image_resize::FilterType,
) -> RgbImage {
    use fast_image_resize::{ResizeAlg, ResizeOptions, Resizer};
    let mut out = RgbImage::new(w.max(1), h.max(1));
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    match Resizer::new().resize(img, &mut out, &options) {
        Ok(()) => out,
        // Only an empty source gets here; image's resizer copes with it.
        Err(_) => image::imageops::resize(
            img,
            w.max(1),
            h.max(1),
            image::imageops::FilterType::Triangle,
        ),
    }
}

/// Ink only: a license's text is printed in black, while seals, stamps and
/// some watermarks are coloured. Each pixel becomes the grey of its
/// brightest channel, made lighter by its saturation (brightest less
/// darkest channel): a colour fades to paper, even a seal's dark red in a
/// dim photo (its digits across 住所 and 广 were read as 6334), while
/// black and grey keep their darkness, and paper under warm light stays
/// paper.
fn ink_only(img: &mut RgbImage) {
    for p in img.pixels_mut() {
        let [r, g, b] = p.0;
        let (hi, lo) = (r.max(g).max(b), r.min(g).min(b));
        let m = hi.saturating_add(hi - lo);
        p.0 = [m, m, m];
    }
}

/// The height a line of text is given for a second look at a region.
/// (A second pass at 40 px, when 32 px found nothing, found nothing more
/// on either tuning half: 188 looks.)
const LOOK_TEXT: f32 = 32.0;
/// A line found on a second look counts only when read this surely: at
/// full size a printed line reads clearly, a fragment does not.
const LOOK_SURE: f32 = 0.8;
/// The detector's input for a second look (height, width): one fixed
/// shape, so one optimised plan.
const LOOK_CANVAS: (u32, u32) = (192, 1536);

/// Whether a grey image holds anything printed outside the rectangles
/// `read` (`[left, top, right, bottom]` in its pixels): a stroke's core is
/// much darker than the paper around it, and even one character of a line
/// `h` pixels tall has many times [`INK_SHARE`] of `h²` such pixels. JPEG
/// noise, an uneven photo and faded (coloured, then greyed) watermarks
/// stay under [`INK_DARKER`] of the paper's brightness or under the share.
fn has_ink(grey: &RgbImage, h: f32, read: &[[f32; 4]]) -> bool {
    ink_share(grey, h, read) >= INK_SHARE
}

/// The pixels of `grey` outside `read` darker than [`INK_DARKER`] of the
/// paper's brightness, as a share of `h²`.
fn ink_share(grey: &RgbImage, h: f32, read: &[[f32; 4]]) -> f32 {
    let mut histogram = [0u32; 256];
    for (x, y, p) in grey.enumerate_pixels() {
        let (x, y) = (x as f32, y as f32);
        if !read
            .iter()
            .any(|r| x >= r[0] && x < r[2] && y >= r[1] && y < r[3])
        {
            histogram[p.0[0] as usize] += 1;
        }
    }
    let total: u32 = histogram.iter().sum();
    // The paper: the brightness most of the stretch is at least as dark
    // as (text covers far less than a fifth of any stretch looked at).
    let mut seen = 0;
    let paper = (0..256)
        .find(|&v| {
            seen += histogram[v];
            seen >= total * 4 / 5
        })
        .unwrap_or(255) as f32;
    let dark = (paper * INK_DARKER) as usize;
    let ink: u32 = histogram[..dark.min(256)].iter().sum();
    ink as f32 / (h * h)
}

/// An ink pixel is darker than this share of the paper's brightness.
const INK_DARKER: f32 = 0.6;
/// A stretch with fewer ink pixels than this share of a line height
/// squared holds no character.
const INK_SHARE: f32 = 0.1;

/// Lines read both ways up to tell an upside-down page.
const ORIENTATION_SAMPLE: usize = 4;
/// The stretch of each of those lines read, in line heights (a few
/// characters).
const ORIENTATION_SPAN: u32 = 6;

impl Ocr {
    /// Loads both models from `models_dir` (see `scripts/fetch-ocr-models.sh`).
    pub fn load(models_dir: impl AsRef<Path>) -> Result<Self, OcrError> {
        let dir = models_dir.as_ref();
        let det_path = dir.join(DET_MODEL);
        let rec_path = dir.join(REC_MODEL);
        for p in [&det_path, &rec_path] {
            if !p.is_file() {
                return Err(OcrError::ModelsMissing(p.clone()));
            }
        }
        let load_err = |path: &Path| {
            let path = path.to_path_buf();
            move |e: TractError| OcrError::Load {
                path,
                detail: format!("{e:#}"),
            }
        };
        let onnx = tract_onnx::onnx();

        let det = onnx
            .model_for_path(&det_path)
            .map_err(load_err(&det_path))?;
        let det = Concretized::new(det);
        let proto = onnx
            .proto_model_for_path(&rec_path)
            .map_err(load_err(&rec_path))?;
        let chars = proto
            .metadata_props
            .iter()
            .find(|p| p.key == "character")
            .map(|p| p.value.clone())
            .ok_or_else(|| OcrError::Dictionary(rec_path.clone()))?;
        // The exported graph records the shapes of one traced run (batch 1,
        // width 320) for its inner values; the input is dynamic, so those
        // records only contradict it. Shapes are inferred from the input.
        let mut proto = proto;
        if let Some(g) = proto.graph.as_mut() {
            g.value_info.clear();
        }
        let rec = onnx
            .model_for_proto_model(&proto)
            .map_err(load_err(&rec_path))?;
        let rec = Concretized::new(rec);
        // PaddleOCR's convention: blank first, the dictionary, then a space.
        let mut dict = Vec::with_capacity(chars.len() / 2 + 2);
        dict.push(String::new());
        dict.extend(chars.lines().map(|c| rec::simplified(c).to_owned()));
        dict.push(" ".to_owned());
        if dict.len() < 3 {
            return Err(OcrError::Dictionary(rec_path));
        }
        Ok(Self {
            det,
            rec,
            dict,
            det_options: DetOptions::default(),
        })
    }

    /// Replaces the detection parameters.
    pub fn with_det_options(mut self, options: DetOptions) -> Self {
        self.det_options = options;
        self
    }

    /// Size of the recognition dictionary, blank and space included.
    pub fn dictionary_len(&self) -> usize {
        self.dict.len()
    }

    /// Finds and reads every line of text, top to bottom, left to right.
    /// Lines read as empty are dropped.
    pub fn read_lines(&self, image: &DynamicImage) -> Result<Vec<TextLine>, OcrError> {
        let img = image.to_rgb8();
        let boxes = self.detect(&img)?;
        self.read_boxes(&img, boxes)
    }

    /// [`Self::read_lines`] of the image turned upright first: a photo
    /// taken sideways or upside down (a quarter, half or three-quarter
    /// turn). Returns the lines and the clockwise quarter turns applied.
    ///
    /// The turn is decided by the text itself: lines of a page are wide,
    /// so boxes mostly taller than wide mean a sideways page (turned a
    /// quarter); then the longest lines are read both ways up, and the
    /// reading the recogniser is surer of wins (upside-down text reads as
    /// low-confidence noise).
    pub fn read_lines_upright(
        &self,
        image: &DynamicImage,
    ) -> Result<(Vec<TextLine>, u8), OcrError> {
        let (img, boxes, turns) = self.upright(image)?;
        Ok((self.read_boxes(&img, boxes)?, turns))
    }

    /// The image scaled within [`MAX_SIDE`] and turned upright, its text
    /// boxes, and the clockwise quarter turns applied.
    fn upright(&self, image: &DynamicImage) -> Result<(RgbImage, Vec<Quad>, u8), OcrError> {
        let mut img = within_max_side(image);
        ink_only(&mut img);
        let mut boxes = self.detect(&img)?;
        let mut turns = 0u8;
        let tall = boxes
            .iter()
            .filter(|q| q.bottom() - q.top() > q.right() - q.left())
            .count();
        if tall * 2 > boxes.len() {
            img = image::imageops::rotate90(&img);
            boxes = self.detect(&img)?;
            turns = 1;
        }
        if self.upside_down(&img, &boxes)? {
            img = image::imageops::rotate180(&img);
            let (w, h) = (img.width() as f32, img.height() as f32);
            // The same boxes, turned with the page (corners back in
            // reading order: the old bottom-right is the new top-left).
            boxes = boxes
                .into_iter()
                .map(|q| {
                    let turn = |p: geom::Point| geom::Point::new(w - p.x, h - p.y);
                    let [tl, tr, br, bl] = q.0;
                    Quad([turn(br), turn(bl), turn(tl), turn(tr)])
                })
                .collect();
            turns += 2;
        }
        Ok((img, boxes, turns))
    }

    /// Reads the longest lines as they are and turned over: true when the
    /// turned reading is clearly the surer one.
    fn upside_down(&self, img: &RgbImage, boxes: &[Quad]) -> Result<bool, OcrError> {
        let mut longest: Vec<&Quad> = boxes.iter().collect();
        longest.sort_by(|a, b| (b.right() - b.left()).total_cmp(&(a.right() - a.left())));
        longest.truncate(ORIENTATION_SAMPLE);
        if longest.is_empty() {
            return Ok(false);
        }
        // A stretch of each line is enough to tell which way up it is, and
        // costs the recogniser a fraction of the whole line.
        let crops: Vec<RgbImage> = longest
            .iter()
            .map(|q| {
                let line = geom::crop_quad(img, q);
                let span = line.height().saturating_mul(ORIENTATION_SPAN);
                if line.width() > span {
                    let x = (line.width() - span) / 2;
                    image::imageops::crop_imm(&line, x, 0, span, line.height()).to_image()
                } else {
                    line
                }
            })
            .collect();
        let score = |read: Vec<(String, f32)>| -> f32 {
            read.iter().map(|(t, c)| c * t.chars().count() as f32).sum()
        };
        // Half the sample first: one way up usually reads as text and the
        // other as noise, and then the other half is not needed.
        let (mut as_is, mut over) = (0.0, 0.0);
        for part in crops.chunks(ORIENTATION_SAMPLE.div_ceil(2)) {
            let turned: Vec<RgbImage> = part.iter().map(image::imageops::rotate180).collect();
            as_is += score(self.recognize(part)?);
            over += score(self.recognize(&turned)?);
            if over > as_is * 2.0 || as_is > over * 2.0 {
                break;
            }
        }
        Ok(over > as_is * 1.2)
    }

    fn read_boxes(&self, img: &RgbImage, mut boxes: Vec<Quad>) -> Result<Vec<TextLine>, OcrError> {
        boxes.sort_by(|a, b| {
            let (ca, cb) = (a.center(), b.center());
            ca.y.total_cmp(&cb.y).then(ca.x.total_cmp(&cb.x))
        });
        let crops: Vec<RgbImage> = boxes.iter().map(|q| geom::crop_quad(img, q)).collect();
        let texts = self.recognize(&crops)?;
        Ok(boxes
            .into_iter()
            .zip(texts)
            .filter(|(_, (t, _))| !t.trim().is_empty())
            .map(|(bbox, (text, confidence))| TextLine {
                text,
                confidence,
                bbox,
            })
            .collect())
    }

    fn detect(&self, img: &RgbImage) -> Result<Vec<Quad>, OcrError> {
        if img.width() < 8 || img.height() < 8 {
            return Ok(Vec::new());
        }
        let (input, h, w) = det::preprocess(img, self.det_options.limit_side);
        self.detect_input(input, img, (h, w))
    }

    /// Runs the detector on a prepared input holding `img` scaled to
    /// `h × w`; the boxes are in `img`'s coordinates.
    fn detect_input(
        &self,
        input: Tensor,
        img: &RgbImage,
        (h, w): (usize, usize),
    ) -> Result<Vec<Quad>, OcrError> {
        let plan = self.det.plan(input.shape())?;
        let out = plan.run(tvec![input.into()]).map_err(infer_err)?;
        let map = out
            .first()
            .ok_or_else(|| OcrError::Inference("detector gave no output".into()))?
            .to_plain_array_view::<f32>()
            .map_err(infer_err)?;
        Ok(
            det::boxes_from_map(&map, img.width(), img.height(), (h, w), &self.det_options)
                .into_iter()
                .map(|(q, _)| q)
                .collect(),
        )
    }

    /// Reads each crop; the result is in the crops' order.
    fn recognize(&self, crops: &[RgbImage]) -> Result<Vec<(String, f32)>, OcrError> {
        // Batch lines of similar aspect so little of each batch is padding.
        let mut order: Vec<usize> = (0..crops.len()).collect();
        let ratio = |c: &RgbImage| c.width() as f32 / c.height().max(1) as f32;
        order.sort_by(|&a, &b| ratio(&crops[a]).total_cmp(&ratio(&crops[b])));
        let mut results = vec![(String::new(), 0.0f32); crops.len()];
        for chunk in order.chunks(REC_BATCH) {
            let batch: Vec<&RgbImage> = chunk.iter().map(|&i| &crops[i]).collect();
            let input = rec::batch_tensor(&batch);
            let plan = self.rec.plan(input.shape())?;
            let out = plan.run(tvec![input.into()]).map_err(infer_err)?;
            let probs = out
                .first()
                .ok_or_else(|| OcrError::Inference("recogniser gave no output".into()))?
                .to_plain_array_view::<f32>()
                .map_err(infer_err)?
                .into_dimensionality::<tract_ndarray::Ix3>()
                .map_err(|e| OcrError::Inference(e.to_string()))?;
            if probs.shape()[2] != self.dict.len() {
                return Err(OcrError::Inference(format!(
                    "recogniser has {} classes but the dictionary {}",
                    probs.shape()[2],
                    self.dict.len()
                )));
            }
            for (k, &i) in chunk.iter().enumerate() {
                results[i] =
                    rec::ctc_decode(probs.index_axis(tract_ndarray::Axis(0), k), &self.dict);
            }
        }
        Ok(results)
    }
}

/// A model whose input shape must be concrete: tract cannot unify the
/// detector's feature-pyramid shapes symbolically, so the model is optimised
/// once per input shape (callers keep the number of shapes small).
struct Concretized {
    model: InferenceModel,
    plans: std::sync::Mutex<std::collections::HashMap<Vec<usize>, Plan>>,
}

impl Concretized {
    fn new(model: InferenceModel) -> Self {
        Self {
            model,
            plans: Default::default(),
        }
    }

    fn plan(&self, shape: &[usize]) -> Result<Plan, OcrError> {
        let mut plans = self
            .plans
            .lock()
            .map_err(|_| OcrError::Inference("model cache poisoned".into()))?;
        if let Some(p) = plans.get(shape) {
            return Ok(p.clone());
        }
        let plan = self
            .model
            .clone()
            .with_input_fact(0, f32::fact(shape).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(infer_err)?;
        plans.insert(shape.to_vec(), plan.clone());
        Ok(plan)
    }
}

fn infer_err(e: impl std::fmt::Display) -> OcrError {
    OcrError::Inference(format!("{e:#}"))
}

impl Ocr {
    /// Reads a license image (PNG or JPEG bytes) as CertHall does: decoded,
    /// turned upright, read line by line, and its fields picked out.
    /// Returns the reading and the clockwise quarter turns applied.
    pub fn read_license_image(&self, image: &[u8]) -> Result<(LicenseRead, u8), OcrError> {
        let img = image::load_from_memory(image)
            .map_err(|e| OcrError::Inference(format!("decode: {e}")))?;
        let (lines, turns) = self.read_license_lines(&img)?;
        Ok((read_license(&lines), turns))
    }

    /// The lines of a license image that its fields can be in, turned
    /// upright (see [`Self::read_lines_upright`]), and the quarter turns.
    pub fn read_license_lines(
        &self,
        image: &DynamicImage,
    ) -> Result<(Vec<TextLine>, u8), OcrError> {
        let (img, boxes, turns) = self.upright(image)?;
        let mut lines = self.read_license_boxes(&img, boxes)?;
        for region in license::open_ends(&lines) {
            let found = self.look_again(&img, region, &lines)?;
            lines.extend(found);
        }
        Ok((lines, turns))
    }

    /// Detects and reads the text of `region` at a size where a line of
    /// its expected height is [`LOOK_TEXT`] pixels tall (the whole page is
    /// detected smaller, where a short line can vanish). A region with no
    /// ink besides the lines already read is not detected at all, and
    /// boxes that lie on a line already read are left out.
    fn look_again(
        &self,
        img: &RgbImage,
        region: license::Region,
        lines: &[TextLine],
    ) -> Result<Vec<TextLine>, OcrError> {
        let clamp = |v: f32, max: u32| v.round().clamp(0.0, max as f32) as u32;
        let (x0, x1) = (
            clamp(region.left, img.width()),
            clamp(region.right, img.width()),
        );
        let (y0, y1) = (
            clamp(region.top, img.height()),
            clamp(region.bottom, img.height()),
        );
        let h = region.line_height.max(1.0);
        if (x1 as f32) - (x0 as f32) < 2.0 * h || (y1 as f32) - (y0 as f32) < 0.5 * h {
            return Ok(Vec::new());
        }
        // `img` is the page as `upright` left it: already ink only.
        let crop = image::imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0).to_image();
        // The page's lines of about this height (a watermark's box,
        // taller and slanted, may cover a missed line).
        let page_lines: Vec<&Quad> = lines
            .iter()
            .map(|l| &l.bbox)
            .filter(|b| b.height() < 1.5 * h)
            .collect();
        // The lines already read, padded, are not where a missed line is.
        let read_here: Vec<[f32; 4]> = page_lines
            .iter()
            .map(|b| {
                let pad = 0.2 * h;
                [
                    b.left() - pad - x0 as f32,
                    b.top() - pad - y0 as f32,
                    b.right() + pad - x0 as f32,
                    b.bottom() + pad - y0 as f32,
                ]
            })
            .collect();
        if !has_ink(&crop, h, &read_here) {
            // Blank paper (an empty value, the space under a finished
            // address) or only what was read already: nothing to find,
            // and a detection costs as much as a third of the page's.
            return Ok(Vec::new());
        }
        let already_read = |q: &Quad| {
            // The box lies much on a line of the page.
            let area = q.width() * q.height();
            page_lines.iter().any(|b| {
                let w = q.right().min(b.right()) - q.left().max(b.left());
                let t = q.bottom().min(b.bottom()) - q.top().max(b.top());
                w > 0.0 && t > 0.0 && w * t > 0.3 * area
            })
        };
        let scale = (LOOK_TEXT / h)
            .min(LOOK_CANVAS.1 as f32 / crop.width() as f32)
            .min(LOOK_CANVAS.0 as f32 / crop.height() as f32);
        let (sw, sh) = (
            ((crop.width() as f32 * scale).round() as u32).clamp(1, LOOK_CANVAS.1),
            ((crop.height() as f32 * scale).round() as u32).clamp(1, LOOK_CANVAS.0),
        );
        let scaled = image::imageops::resize(&crop, sw, sh, image::imageops::FilterType::Triangle);
        let input = det::on_canvas(&scaled, LOOK_CANVAS.0, LOOK_CANVAS.1);
        let boxes: Vec<Quad> = self
            .detect_input(input, &crop, (sh as usize, sw as usize))?
            .into_iter()
            .map(|q| Quad(q.0.map(|p| Point::new(p.x + x0 as f32, p.y + y0 as f32))))
            .filter(|q| !already_read(q))
            .collect();
        Ok(self
            .read_boxes(img, boxes)?
            .into_iter()
            .filter(|l| {
                l.confidence >= LOOK_SURE && l.bbox.height() < 1.4 * h && !license::is_slanted(l)
            })
            .collect())
    }

    /// Reads the boxes a license's fields can be in. The recogniser's time
    /// goes by the length of text read, and half a license's text is of
    /// no use here: the small print (the QR code's caption, the footer,
    /// the seal's ring) and the 经营范围, which can run to ten lines. So
    /// the short boxes are read first (labels, single spread-out label
    /// characters, short values); they place the 经营范围 label, and the
    /// long lines below it in its column are not read.
    fn read_license_boxes(
        &self,
        img: &RgbImage,
        boxes: Vec<Quad>,
    ) -> Result<Vec<TextLine>, OcrError> {
        let mut heights: Vec<f32> = boxes.iter().map(Quad::height).collect();
        heights.sort_by(f32::total_cmp);
        let median = heights.get(heights.len() / 2).copied().unwrap_or(0.0);
        let (short, long): (Vec<Quad>, Vec<Quad>) = boxes
            .into_iter()
            .filter(|q| q.height() >= license::SMALL_PRINT * median)
            .partition(|q| q.width() < license::SHORT_BOX * q.height());
        let mut lines = self.read_boxes(img, short)?;
        let keep = license::outside_scope(&lines, &long);
        let long = long
            .into_iter()
            .zip(keep)
            .filter_map(|(q, k)| k.then_some(q))
            .collect();
        lines.extend(self.read_boxes(img, long)?);
        Ok(lines)
    }
}

/// A reading as the domain takes it: the date as the form wants it
/// (`2015-06-30`), the fields the reading is unsure of named.
pub fn domain_reading(read: LicenseRead) -> certhall_domain::wizard::LicenseReading {
    let unsure = read.unsure().into_iter().map(str::to_owned).collect();
    let f = read.fields;
    certhall_domain::wizard::LicenseReading {
        fields: certhall_domain::wizard::EnterpriseInput {
            name: f.name,
            uscc: f.uscc,
            kind: f.kind,
            legal_representative: f.legal_representative,
            address: f.address,
            registered_capital: f.registered_capital,
            established: certhall_domain::wizard::normalize_date(&f.established),
            registered_place: String::new(),
            nature: String::new(),
        },
        unsure,
        license_marks: Some(read.marks),
    }
}

/// Step 3's license reader (the domain's port): decode, turn upright, read
/// the lines, pick the fields.
impl certhall_domain::wizard::LicenseReader for Ocr {
    fn read(&self, image: &[u8]) -> Result<certhall_domain::wizard::LicenseReading, String> {
        let (read, _) = self.read_license_image(image).map_err(|e| e.to_string())?;
        Ok(domain_reading(read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grey stretch of paper 40 px line height, 10 lines high and wide.
    fn paper() -> RgbImage {
        // Uneven paper, as in a photo: 200 to 239.
        RgbImage::from_fn(400, 60, |x, y| {
            let v = 200 + ((x * 7 + y * 13) % 40) as u8;
            image::Rgb([v, v, v])
        })
    }

    fn stroke(img: &mut RgbImage, value: u8, (x0, x1): (u32, u32)) {
        for y in 15..45 {
            for x in x0..x1 {
                img.put_pixel(x, y, image::Rgb([value; 3]));
            }
        }
    }

    #[test]
    fn blank_paper_has_no_ink() {
        assert!(!has_ink(&paper(), 40.0, &[]));
    }

    #[test]
    fn one_printed_character_is_ink() {
        let mut img = paper();
        // Two strokes of one character: 2 × 6 × 30 px.
        stroke(&mut img, 30, (100, 106));
        stroke(&mut img, 30, (120, 126));
        assert!(has_ink(&img, 40.0, &[]));
    }

    #[test]
    fn ink_on_a_line_already_read_is_not_counted() {
        let mut img = paper();
        stroke(&mut img, 30, (100, 108));
        stroke(&mut img, 30, (120, 128));
        assert!(!has_ink(&img, 40.0, &[[90.0, 5.0, 140.0, 55.0]]));
        assert!(has_ink(&img, 40.0, &[[90.0, 5.0, 110.0, 55.0]]));
    }

    #[test]
    fn coloured_marks_fade_to_paper_and_black_stays() {
        let mut img = RgbImage::from_fn(5, 1, |x, _| {
            image::Rgb(match x {
                0 => [30, 30, 35],    // black print
                1 => [150, 40, 45],   // a seal's dark red in a dim photo
                2 => [70, 80, 170],   // a blue stamp
                3 => [235, 220, 190], // paper under warm light
                _ => [120, 120, 120], // grey print
            })
        });
        ink_only(&mut img);
        let grey: Vec<u8> = img.pixels().map(|p| p.0[0]).collect();
        assert_eq!(grey, vec![40, 255, 255, 255, 120]);
    }

    #[test]
    fn a_faded_watermark_is_not_ink() {
        let mut img = paper();
        // A light mark across the stretch (a greyed coloured watermark).
        stroke(&mut img, 170, (0, 300));
        assert!(!has_ink(&img, 40.0, &[]));
    }
}
