//! Uploaded images, checked by what they contain rather than by their name.
//!
//! Applicants upload images of the company seal (公章), the legal
//! representative's seal (法人章) and handwritten signature (法人手写签名),
//! and scans of the authorization letter (授权委托书). Counter operators open
//! them, so they must be what they claim to be and carry nothing else.
//! [`sanitize_image`] accepts a file only when
//!
//! 1. it is not larger than the byte limit (checked before anything is
//!    parsed),
//! 2. it starts with the PNG or JPEG signature,
//! 3. its header declares sane dimensions — each side within the limit, the
//!    pixel count and the decoded size within theirs, checked before pixel
//!    memory is allocated — and a short side long enough to be legible,
//! 4. it decodes completely as that format;
//!
//! and then re-encodes the pixels (PNG stays PNG, JPEG becomes a fresh
//! JPEG at quality 90). What is stored is the re-encoded file only: EXIF
//! (with its GPS position), comments, ICC profiles, bytes after the image's
//! end and any second format hidden in the first (a polyglot) do not
//! survive, because nothing but pixels is carried over. The EXIF
//! orientation is applied to the pixels first, so a phone photo still shows
//! upright once its metadata is gone.
//!
//! The crate knows nothing of HTTP or SQL: the web layer maps an
//! [`UploadRefusal`] to a response, storage keeps a [`CleanImage`]'s bytes
//! under its SHA-256.

use std::fmt;
use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits};
use sha2::{Digest, Sha256};

/// JPEG quality of re-encoded photos: visually lossless for seals and
/// handwriting, a fraction of the size of quality 100.
pub const JPEG_QUALITY: u8 = 90;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_SIGNATURE: &[u8] = b"\xff\xd8\xff";

/// What an uploaded image must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRules {
    /// Largest accepted file, in bytes.
    pub max_bytes: usize,
    /// Shortest accepted short side, in pixels: below it a seal or a
    /// signature is not legible.
    pub min_short_side: u32,
    /// Longest accepted side, in pixels.
    pub max_side: u32,
    /// Largest accepted pixel count (width × height).
    pub max_pixels: u64,
    /// Largest decoded pixel buffer, in bytes: the memory one decode may
    /// take, whatever the colour type.
    pub max_decoded_bytes: u64,
}

impl ImageRules {
    /// The rules for application materials (seals, signatures,
    /// authorization letters): at most 5 MB, at least 300 px on the short
    /// side, at most 10 000 px a side and 40 megapixels (an A4 page scanned
    /// at 600 dpi in colour is about 35), at most 256 MiB decoded.
    pub fn materials() -> Self {
        Self {
            max_bytes: 5 * 1024 * 1024,
            min_short_side: 300,
            max_side: 10_000,
            max_pixels: 40_000_000,
            max_decoded_bytes: 256 * 1024 * 1024,
        }
    }
}

impl Default for ImageRules {
    fn default() -> Self {
        Self::materials()
    }
}

/// The two formats accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// PNG (ISO/IEC 15948).
    Png,
    /// JPEG (ISO/IEC 10918, JFIF).
    Jpeg,
}

impl ImageFormat {
    /// The media type, for `Content-Type`.
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
        }
    }

    /// A stable lower-case name for storage (`png`, `jpeg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
        }
    }

    fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(PNG_SIGNATURE) {
            Some(Self::Png)
        } else if bytes.starts_with(JPEG_SIGNATURE) {
            Some(Self::Jpeg)
        } else {
            None
        }
    }

    fn codec(self) -> image::ImageFormat {
        match self {
            Self::Png => image::ImageFormat::Png,
            Self::Jpeg => image::ImageFormat::Jpeg,
        }
    }
}

/// An image that passed [`sanitize_image`]: re-encoded bytes and what is
/// known about them. Only this crate makes one.
#[derive(Clone, PartialEq, Eq)]
pub struct CleanImage {
    bytes: Vec<u8>,
    format: ImageFormat,
    width: u32,
    height: u32,
    sha256: String,
}

impl CleanImage {
    /// The re-encoded file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The re-encoded file, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Its format (the same as the upload's).
    pub fn format(&self) -> ImageFormat {
        self.format
    }

    /// Width in pixels, as displayed (after the EXIF orientation).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels, as displayed (after the EXIF orientation).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// SHA-256 of [`CleanImage::bytes`], lower-case hex.
    pub fn sha256_hex(&self) -> &str {
        &self.sha256
    }
}

impl fmt::Debug for CleanImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CleanImage")
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("len", &self.bytes.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// Why an upload is refused. Each has a stable code and a message for the
/// applicant in Simplified Chinese; the English `Display` is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefusal {
    /// The file is empty (nothing was chosen).
    #[error("empty upload")]
    Empty,
    /// The content is neither PNG nor JPEG, whatever the file name says.
    #[error("not a PNG or JPEG image")]
    NotAnImage,
    /// The file is over the byte limit.
    #[error("file of {size} bytes over the limit of {limit}")]
    TooLarge {
        /// The file's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The short side is under the minimum.
    #[error("image {width}x{height} has a short side under {min_short_side} px")]
    TooSmall {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The minimum short side.
        min_short_side: u32,
    },
    /// A side or the pixel count is over its limit.
    #[error("image {width}x{height} over the dimension limits")]
    DimensionsTooLarge {
        /// Width in pixels, as the file declares it.
        width: u32,
        /// Height in pixels, as the file declares it.
        height: u32,
        /// The limit on each side.
        max_side: u32,
        /// The limit on the pixel count.
        max_pixels: u64,
    },
    /// The sides and pixel count are within the limits, but the pixels
    /// would take more memory than one decode may (a 16-bit-per-channel
    /// image, typically): said as such, not as a size the image is not.
    #[error(
        "image {width}x{height} needs {decoded_bytes} bytes decoded, over {max_decoded_bytes}"
    )]
    TooDeep {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The bytes its pixels would take.
        decoded_bytes: u64,
        /// The limit.
        max_decoded_bytes: u64,
    },
    /// The file starts like an image but does not decode: truncated,
    /// corrupt, or an encoding the decoder does not support.
    #[error("damaged image: {0}")]
    Damaged(String),
}

impl UploadRefusal {
    /// The stable machine code, e.g. `upload_not_image`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "upload_empty",
            Self::NotAnImage => "upload_not_image",
            Self::TooLarge { .. } => "upload_too_large",
            Self::TooSmall { .. } => "upload_too_small",
            Self::DimensionsTooLarge { .. } => "upload_dimensions_too_large",
            Self::TooDeep { .. } => "upload_too_deep",
            Self::Damaged(_) => "upload_damaged",
        }
    }

    /// The message shown to the applicant, in Simplified Chinese.
    pub fn message_zh(&self) -> String {
        match self {
            Self::Empty => "未收到图片内容，请选择要上传的图片文件。".into(),
            Self::NotAnImage => {
                "文件内容不是 PNG 或 JPEG 图片，请重新选择。仅修改文件扩展名无效，请用图片软件另存为 PNG 或 JPEG 格式。"
                    .into()
            }
            Self::TooLarge { size, limit } => format!(
                "图片文件过大（{}），请上传不超过 {} 的图片，可压缩或降低分辨率后重新上传。",
                megabytes(*size),
                megabytes(*limit)
            ),
            Self::TooSmall {
                width,
                height,
                min_short_side,
            } => format!(
                "图片分辨率太低（{width} × {height} 像素），较短的一边至少需要 {min_short_side} 像素，请上传更清晰的图片。"
            ),
            Self::DimensionsTooLarge {
                width,
                height,
                max_side,
                max_pixels,
            } => format!(
                "图片尺寸过大（{width} × {height} 像素），请缩小后重新上传：每边不超过 {max_side} 像素，总像素不超过 {} 万。",
                max_pixels / 10_000
            ),
            Self::TooDeep {
                width,
                height,
                decoded_bytes,
                ..
            } => {
                let per_pixel = decoded_bytes / (u64::from(*width) * u64::from(*height)).max(1);
                format!(
                    "图片色彩精度过高（{width} × {height} 像素，每像素 {per_pixel} 字节，如 16 位色深），读取需占用过多内存。请用图片软件另存为普通的 8 位 PNG 或 JPEG 后重新上传，像素尺寸无需改变。"
                )
            }
            Self::Damaged(_) => {
                "图片文件已损坏、不完整或使用了不支持的编码，无法读取。请重新拍摄或另存为 PNG、JPEG 后上传。"
                    .into()
            }
        }
    }
}

/// `5 MB`, `20 MB`, `5.3 MB` (binary megabytes, as file managers show).
fn megabytes(bytes: usize) -> String {
    const MB: usize = 1024 * 1024;
    // One decimal, rounded up so a file just over the limit never shows as
    // equal to it.
    let tenths = bytes.saturating_mul(10).div_ceil(MB);
    match tenths % 10 {
        0 => format!("{} MB", tenths / 10),
        d => format!("{}.{d} MB", tenths / 10),
    }
}

/// Width and height from a PNG's IHDR chunk, which must come first.
fn declared_png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let height = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((width, height))
}

/// Whether a JPEG's marker structure (ITU-T T.81 Annex B) reaches the
/// end-of-image marker: segments are skipped by their length (so an EXIF
/// thumbnail's own markers are not mistaken for the image's), and
/// entropy-coded data after each start-of-scan is skipped up to the next
/// marker that is neither a stuffed `FF 00` nor a restart marker.
fn jpeg_reaches_end(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    loop {
        if bytes.get(i) != Some(&0xff) {
            return false;
        }
        while bytes.get(i) == Some(&0xff) {
            i += 1; // fill bytes
        }
        let Some(&marker) = bytes.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0xd9 => return true,
            0x01 | 0xd0..=0xd7 => continue, // no length field
            _ => {}
        }
        let Some(len) = bytes.get(i..i + 2) else {
            return false;
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len < 2 {
            return false;
        }
        i += len;
        if marker == 0xda {
            loop {
                match (bytes.get(i), bytes.get(i + 1)) {
                    (None, _) | (Some(0xff), None) => return false,
                    (Some(0xff), Some(0x00 | 0xd0..=0xd7)) => i += 2,
                    (Some(0xff), Some(_)) => break,
                    _ => i += 1,
                }
            }
        }
    }
}

fn too_deep(width: u32, height: u32, decoded_bytes: u64, rules: &ImageRules) -> UploadRefusal {
    UploadRefusal::TooDeep {
        width,
        height,
        decoded_bytes,
        max_decoded_bytes: rules.max_decoded_bytes,
    }
}

fn too_large(width: u32, height: u32, rules: &ImageRules) -> UploadRefusal {
    UploadRefusal::DimensionsTooLarge {
        width,
        height,
        max_side: rules.max_side,
        max_pixels: rules.max_pixels,
    }
}

/// The size rules, from the declared size (and, once a decoder exists, the
/// bytes it will need): nothing has been allocated for pixels yet.
fn check_dimensions(
    width: u32,
    height: u32,
    decoded_bytes: Option<u64>,
    rules: &ImageRules,
) -> Result<(), UploadRefusal> {
    if width == 0 || height == 0 {
        return Err(UploadRefusal::Damaged(format!(
            "declared size {width}x{height}"
        )));
    }
    if width > rules.max_side
        || height > rules.max_side
        || u64::from(width) * u64::from(height) > rules.max_pixels
    {
        return Err(too_large(width, height, rules));
    }
    if let Some(b) = decoded_bytes.filter(|b| *b > rules.max_decoded_bytes) {
        return Err(too_deep(width, height, b, rules));
    }
    if width.min(height) < rules.min_short_side {
        return Err(UploadRefusal::TooSmall {
            width,
            height,
            min_short_side: rules.min_short_side,
        });
    }
    Ok(())
}

fn damaged(e: ImageError) -> UploadRefusal {
    UploadRefusal::Damaged(e.to_string())
}

/// Checks an uploaded image by its content and re-encodes it; see the
/// module documentation for the steps.
pub fn sanitize_image(bytes: &[u8], rules: &ImageRules) -> Result<CleanImage, UploadRefusal> {
    if bytes.is_empty() {
        return Err(UploadRefusal::Empty);
    }
    if bytes.len() > rules.max_bytes {
        return Err(UploadRefusal::TooLarge {
            size: bytes.len(),
            limit: rules.max_bytes,
        });
    }
    let format = ImageFormat::sniff(bytes).ok_or(UploadRefusal::NotAnImage)?;

    // PNG declares its size at a fixed place; checking it before the
    // decoder exists keeps absurd sizes away from the decoder's own row
    // buffers too. (A JPEG decoder reads only the headers before it is
    // asked for pixels, and JPEG sides stop at 65 535.)
    if let Some((width, height)) = declared_png_size(bytes) {
        check_dimensions(width, height, None, rules)?;
    }

    // The JPEG decoder hides a truncated file by painting the missing
    // part grey; a seal or letter cut off halfway is not acceptable.
    if format == ImageFormat::Jpeg && !jpeg_reaches_end(bytes) {
        return Err(UploadRefusal::Damaged(
            "JPEG ends before its end-of-image marker".into(),
        ));
    }

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.codec());
    // The allocation limit bounds the decoders' internal buffers; the
    // sides are checked by `check_dimensions`, which says which rule failed.
    let mut limits = Limits::default();
    limits.max_alloc = Some(rules.max_decoded_bytes);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(damaged)?;
    let (width, height) = decoder.dimensions();
    let decoded_bytes = decoder.total_bytes();
    check_dimensions(width, height, Some(decoded_bytes), rules)?;

    // A malformed EXIF block only costs the orientation: the metadata is
    // dropped anyway.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut pixels = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        // Within the sides and the pixel count (checked above): the
        // decoder's own buffers went over the memory limit.
        ImageError::Limits(_) => too_deep(width, height, decoded_bytes, rules),
        e => damaged(e),
    })?;
    pixels.apply_orientation(orientation);
    let (width, height) = (pixels.width(), pixels.height());

    let mut out = Vec::new();
    match format {
        ImageFormat::Png => pixels.write_with_encoder(PngEncoder::new_with_quality(
            &mut out,
            CompressionType::Default,
            FilterType::Adaptive,
        )),
        ImageFormat::Jpeg => {
            // Baseline JPEG holds grey or RGB; the decoder's rare other
            // outputs (grey + alpha, RGBA) lose an alpha JPEG never shows.
            let pixels = match pixels {
                DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => pixels,
                other => DynamicImage::ImageRgb8(other.to_rgb8()),
            };
            pixels.write_with_encoder(JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))
        }
    }
    // Encoding decoded 8/16-bit pixels into a Vec does not fail; if it ever
    // does, the upload cannot be kept, and the user is told to resave it.
    .map_err(damaged)?;

    let sha256 = hex::encode(Sha256::digest(&out));
    Ok(CleanImage {
        width,
        height,
        bytes: out,
        format,
        sha256,
    })
}

#[cfg(test)]
mod tests;
