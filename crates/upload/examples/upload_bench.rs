//! Cost of the material-upload check: `sanitize_image` (decode by content,
//! size rules, re-encode, SHA-256) on realistic inputs built in memory.
//!
//! ```text
//! cargo run --release -p certhall-upload --example upload_bench -- [N]
//! ```
//! For the one-core figure: `taskset -c 0 target/release/examples/upload_bench`.
//! Every call runs on the calling thread (the server runs each upload on a
//! tokio blocking thread), so the timings are single-threaded either way.

use std::error::Error;
use std::time::{Duration, Instant};

use certhall_upload::{sanitize_image, ImageRules};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};

type Res<T> = Result<T, Box<dyn Error>>;

const MB: usize = 1024 * 1024;

/// xorshift64*: deterministic noise without a `rand` dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Triangular noise in (-amp, amp), roughly like sensor noise.
    fn noise(&mut self, amp: f32) -> f32 {
        (self.unit() + self.unit() - 1.0) * amp
    }
}

fn clamp_u8(v: f32) -> u8 {
    v.clamp(0.0, 255.0) as u8
}

/// Rows of "text": dark bars of random word lengths, as a page shows them
/// from a distance. Returns, for each row band, the word spans.
struct TextLayout {
    top: u32,
    line_pitch: u32,
    x_height: u32,
    left: u32,
    lines: Vec<Vec<(u32, u32)>>,
}

impl TextLayout {
    fn new(rng: &mut XorShift, left: u32, right: u32, top: u32, bottom: u32, pitch: u32) -> Self {
        let mut lines = Vec::new();
        let mut y = top;
        while y + pitch <= bottom {
            let mut words = Vec::new();
            let mut x = left;
            // Some lines end early (paragraph ends).
            let end = if rng.unit() < 0.2 {
                left + ((right - left) as f32 * (0.3 + 0.5 * rng.unit())) as u32
            } else {
                right
            };
            loop {
                let w = (pitch as f32 * (0.8 + 3.0 * rng.unit())) as u32;
                if x + w > end {
                    break;
                }
                words.push((x, x + w));
                x += w + pitch / 3;
            }
            lines.push(words);
            y += pitch;
        }
        Self {
            top,
            line_pitch: pitch,
            x_height: pitch / 2,
            left,
            lines,
        }
    }

    /// Ink coverage at (x, y): 0 (paper) to 1 (ink), with glyph-like gaps.
    fn ink(&self, x: u32, y: u32) -> f32 {
        if y < self.top || x < self.left {
            return 0.0;
        }
        let row = ((y - self.top) / self.line_pitch) as usize;
        let in_row = (y - self.top) % self.line_pitch;
        if in_row >= self.x_height {
            return 0.0;
        }
        let Some(words) = self.lines.get(row) else {
            return 0.0;
        };
        let hit = words.iter().any(|&(a, b)| x >= a && x < b);
        if !hit {
            return 0.0;
        }
        // Vertical strokes: glyphs are not solid blocks.
        let stroke = self.x_height / 4 + 1;
        if ((x / stroke) + row as u32).is_multiple_of(3) {
            0.0
        } else {
            1.0
        }
    }
}

/// (a) A phone photo of a document on a desk: a wood-toned background, a
/// lit page with text, vignetting, sensor noise.
fn phone_photo(rng: &mut XorShift) -> RgbImage {
    let (w, h) = (4032u32, 3024u32);
    let (pl, pr, pt, pb) = (620u32, 3420u32, 180u32, 2860u32);
    let text = TextLayout::new(rng, pl + 180, pr - 180, pt + 220, pb - 200, 64);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let rmax = (cx * cx + cy * cy).sqrt();
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let r = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt() / rmax;
        let light = 1.0 - 0.35 * r * r + 0.05 * (fx / w as f32);
        let on_page = x >= pl && x < pr && y >= pt && y < pb;
        let base = if on_page {
            let ink = text.ink(x, y);
            let paper = [236.0, 232.0, 222.0];
            let inked = [48.0, 46.0, 52.0];
            [0, 1, 2].map(|c| paper[c] * (1.0 - ink) + inked[c] * ink)
        } else {
            // Wood grain: slow stripes along x.
            let grain = 12.0 * ((fy * 0.02 + (fx * 0.003).sin() * 6.0).sin());
            [128.0 + grain, 88.0 + grain * 0.8, 58.0 + grain * 0.5]
        };
        let n = rng.noise(9.0);
        Rgb([0, 1, 2].map(|c| clamp_u8(base[c] * light + n + rng.noise(4.0))))
    })
}

/// (b) An A4 page scanned at 300 dpi: white paper, black text, a red seal
/// near the bottom, light scanner noise.
fn a4_scan(rng: &mut XorShift) -> RgbImage {
    let (w, h) = (2480u32, 3508u32);
    let text = TextLayout::new(rng, 250, 2230, 300, 2700, 50);
    let (sx, sy, sr) = (1800.0f32, 2950.0f32, 210.0f32);
    RgbImage::from_fn(w, h, |x, y| {
        let ink = text.ink(x, y);
        let (fx, fy) = (x as f32, y as f32);
        let d = ((fx - sx).powi(2) + (fy - sy).powi(2)).sqrt();
        let seal = (d > sr - 18.0 && d < sr) || (d < 60.0);
        let mut px = [250.0 - 200.0 * ink; 3];
        if seal {
            // Seal ink over paper (and over text, as a stamp does).
            px = [px[0].min(205.0), px[1].min(40.0), px[2].min(45.0)];
        }
        let n = rng.noise(3.0);
        Rgb(px.map(|v| clamp_u8(v + n)))
    })
}

/// (c) A company seal photographed or scanned alone: a red ring, an inner
/// ring and a solid star on white.
fn seal(rng: &mut XorShift) -> RgbImage {
    let (w, h) = (800u32, 800u32);
    let (c, r) = (400.0f32, 360.0f32);
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - c, y as f32 - c);
        let d = (dx * dx + dy * dy).sqrt();
        let ring = d > r - 28.0 && d < r;
        let inner = d > r - 60.0 && d < r - 52.0;
        // A five-pointed star of radius 110, by angle.
        let a = dy.atan2(dx);
        let k = (a * 5.0 / std::f32::consts::TAU).rem_euclid(1.0);
        let star = d < 45.0 + 65.0 * (1.0 - 2.0 * (k - 0.5).abs());
        if ring || inner || star {
            // Uneven stamp ink.
            let v = rng.noise(20.0);
            Rgb([clamp_u8(210.0 + v), clamp_u8(30.0 + v / 2.0), 35])
        } else {
            Rgb([255, 255, 255])
        }
    })
}

/// (d) A handwritten signature: a few thick, dark-blue cursive strokes on
/// white.
fn signature(_rng: &mut XorShift) -> RgbImage {
    let (w, h) = (1200u32, 500u32);
    RgbImage::from_fn(w, h, |x, y| {
        let fx = x as f32;
        let fy = y as f32;
        let in_pen = fx > 120.0 && fx < 1080.0;
        let curve1 = 250.0 + 110.0 * (fx * 0.021).sin() * (fx * 0.004).cos();
        let curve2 = 280.0 + 60.0 * (fx * 0.047 + 1.0).sin();
        let thick = 4.0 + 2.0 * (fx * 0.01).sin().abs();
        let on = in_pen
            && ((fy - curve1).abs() < thick || (fx < 800.0 && (fy - curve2).abs() < thick * 0.7));
        if on {
            Rgb([25, 30, 90])
        } else {
            Rgb([255, 255, 255])
        }
    })
}

fn jpeg(img: &RgbImage, quality: u8) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality).write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

fn png(img: &RgbImage) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out).write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

struct Input {
    name: &'static str,
    pixels: String,
    bytes: Vec<u8>,
}

fn dims(img: &RgbImage) -> String {
    format!("{}×{}", img.width(), img.height())
}

fn inputs() -> Res<Vec<Input>> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let limit = ImageRules::materials().max_bytes;
    let mut v = Vec::new();

    let photo = phone_photo(&mut rng);
    let mut quality = 90u8;
    let mut bytes = jpeg(&photo, quality)?;
    while bytes.len() > limit && quality > 50 {
        quality -= 5;
        bytes = jpeg(&photo, quality)?;
    }
    println!(
        "phone photo: JPEG quality {quality}, {} bytes ({:.2} MB)",
        bytes.len(),
        bytes.len() as f64 / MB as f64
    );
    v.push(Input {
        name: "phone photo of a document (JPEG)",
        pixels: dims(&photo),
        bytes,
    });
    drop(photo);

    let scan = a4_scan(&mut rng);
    v.push(Input {
        name: "A4 scan, 300 dpi (JPEG q85)",
        pixels: dims(&scan),
        bytes: jpeg(&scan, 85)?,
    });
    drop(scan);

    let s = seal(&mut rng);
    v.push(Input {
        name: "seal (PNG)",
        pixels: dims(&s),
        bytes: png(&s)?,
    });

    let sig = signature(&mut rng);
    v.push(Input {
        name: "signature (PNG)",
        pixels: dims(&sig),
        bytes: png(&sig)?,
    });

    // A valid image padded with zeros to 20 MB: refused by its size before
    // anything is parsed.
    let mut padded = png(&s)?;
    padded.resize(20 * MB, 0);
    v.push(Input {
        name: "20 MB file (PNG padded with zeros)",
        pixels: dims(&s),
        bytes: padded,
    });

    v.push(Input {
        name: "text file named `seal.png`",
        pixels: "—".into(),
        bytes: "公章\n这不是图片，只是改了扩展名的文本文件。\n"
            .repeat(200)
            .into_bytes(),
    });
    Ok(v)
}

/// Milliseconds, with enough decimals that a refusal (tens of
/// nanoseconds) does not print as zero.
fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.5}")
    }
}

/// Median time of decoding alone (what `sanitize_image` does before it
/// re-encodes), to split the accepted rows into decode and the rest.
fn decode_median(bytes: &[u8], n: usize) -> Res<Duration> {
    let format = image::guess_format(bytes)?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let img = image::load_from_memory_with_format(std::hint::black_box(bytes), format)?;
        times.push(start.elapsed());
        std::hint::black_box(&img);
    }
    times.sort();
    Ok(percentile(&times, 0.5))
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() -> Res<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20);
    if n == 0 {
        return Err("N must be at least 1".into());
    }
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    // available_parallelism follows the CPU affinity (1 under `taskset -c 0`);
    // the machine's online CPUs, where Linux says.
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
    println!(
        "available parallelism: {cores} core(s) (machine's online CPUs: {online}); \
         sanitize_image runs single-threaded (one call at a time on the main thread)"
    );
    let rules = ImageRules::materials();
    let built = Instant::now();
    let inputs = inputs()?;
    println!(
        "inputs built in {:.1?}; {n} timed calls each after 1 warm-up\n",
        built.elapsed()
    );

    println!("| input | bytes in | pixels | bytes out | median ms | p90 ms | max ms | outcome |");
    println!("|---|---:|---|---:|---:|---:|---:|---|");
    let mut accepted = Vec::new();
    for input in &inputs {
        // Warm-up (page faults, allocator, caches); its result describes the row.
        let first = sanitize_image(&input.bytes, &rules);
        let (bytes_out, outcome) = match &first {
            Ok(clean) => (
                clean.bytes().len().to_string(),
                format!(
                    "accepted ({} {}×{})",
                    clean.format().as_str(),
                    clean.width(),
                    clean.height()
                ),
            ),
            Err(r) => ("—".to_owned(), format!("refused `{}`", r.code())),
        };
        drop(first);
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let r = sanitize_image(std::hint::black_box(&input.bytes), &rules);
            let elapsed = start.elapsed();
            std::hint::black_box(&r);
            drop(r);
            times.push(elapsed);
        }
        times.sort();
        let median = percentile(&times, 0.5);
        if outcome.starts_with("accepted") {
            accepted.push((input, median));
        }
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            input.name,
            input.bytes.len(),
            input.pixels,
            bytes_out,
            ms(median),
            ms(percentile(&times, 0.9)),
            ms(times[times.len() - 1]),
            outcome
        );
    }

    println!("\n| accepted input | median ms | of which decode ms | rest: re-encode, SHA-256, checks ms |");
    println!("|---|---:|---:|---:|");
    for (input, median) in accepted {
        let decode = decode_median(&input.bytes, n)?;
        println!(
            "| {} | {} | {} | {} |",
            input.name,
            ms(median),
            ms(decode),
            ms(median.saturating_sub(decode))
        );
    }
    Ok(())
}
