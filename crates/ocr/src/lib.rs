//! Business-license (营业执照) OCR for the enterprise identity step.
//!
//! Runs PaddleOCR's PP-OCRv4 text detection (DB) and recognition (SVTR,
//! CTC) models in-process with [tract](https://github.com/sonos/tract), a
//! pure-Rust ONNX runtime: no Python, no native library, no network. The
//! models come from the PyPI package `rapidocr_onnxruntime` and are put in
//! place by `scripts/fetch-ocr-models.sh`; the recognition dictionary is
//! read from the recognition model's ONNX metadata (`character`).
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
pub const REC_MODEL: &str = "ch_PP-OCRv4_rec_infer.onnx";

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
    image.thumbnail_exact(nw, nh).to_rgb8()
}

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
        let rec = onnx
            .model_for_proto_model(&proto)
            .map_err(load_err(&rec_path))?;
        let rec = Concretized::new(rec);
        // PaddleOCR's convention: blank first, the dictionary, then a space.
        let mut dict = Vec::with_capacity(chars.len() / 2 + 2);
        dict.push(String::new());
        dict.extend(chars.lines().map(str::to_owned));
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
    OcrError::Inference(e.to_string())
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
        Ok((self.read_license_boxes(&img, boxes)?, turns))
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
