//! Synthetic business licenses for tests and the benchmark: random but
//! plausible fields (with valid USCCs), laid out like the 2019 national
//! template, rendered with a CJK system font, then degraded (paper noise,
//! a slight rotation, JPEG compression) like a phone photo or a scan.

use ab_glyph::{Font, FontVec, PxScale, ScaleFont};
use image::{DynamicImage, Rgb, RgbImage};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::license::{uscc_check_char, USCC_CHARS};
use crate::LicenseFields;

/// Where Debian's `fonts-wqy-zenhei` puts its font.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc";

/// Why a license could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The font file cannot be read or parsed.
    #[error("cannot load font {0}")]
    Font(String),
    /// JPEG round trip failed.
    #[error("image encoding failed: {0}")]
    Encode(String),
}

/// A font to render with.
#[derive(Debug)]
pub struct Renderer {
    font: FontVec,
}

/// How a license image is degraded.
#[derive(Debug, Clone)]
pub struct Degrade {
    /// Maximum rotation either way, in degrees.
    pub max_rotation_deg: f32,
    /// JPEG quality range.
    pub jpeg_quality: (u8, u8),
    /// Amplitude of the per-pixel noise.
    pub noise: u8,
}

impl Default for Degrade {
    fn default() -> Self {
        Self {
            max_rotation_deg: 2.0,
            jpeg_quality: (60, 85),
            noise: 12,
        }
    }
}

impl Renderer {
    /// Loads a font (a `.ttc` collection: its first face).
    pub fn load(path: &str) -> Result<Self, SynthError> {
        let data = std::fs::read(path).map_err(|e| SynthError::Font(format!("{path}: {e}")))?;
        let font = FontVec::try_from_vec_and_index(data, 0)
            .map_err(|e| SynthError::Font(format!("{path}: {e}")))?;
        Ok(Self { font })
    }

    /// Width of `text` at `size` pixels.
    fn text_width(&self, text: &str, size: f32) -> f32 {
        let f = self.font.as_scaled(PxScale::from(size));
        text.chars().map(|c| f.h_advance(f.glyph_id(c))).sum()
    }

    /// Draws `text` with its top-left corner at (x, y).
    /// Draws `text` at (`x`, `y`) in this renderer's font (other tests'
    /// images: a seal, a letter).
    pub fn draw_text(
        &self,
        img: &mut RgbImage,
        text: &str,
        x: f32,
        y: f32,
        size: f32,
        color: [u8; 3],
    ) {
        self.draw(img, text, x, y, size, color);
    }

    fn draw(&self, img: &mut RgbImage, text: &str, x: f32, y: f32, size: f32, color: [u8; 3]) {
        let f = self.font.as_scaled(PxScale::from(size));
        let baseline = y + f.ascent();
        let mut pen = x;
        for c in text.chars() {
            let glyph = f.scaled_glyph(c);
            let adv = f.h_advance(glyph.id);
            let mut g = glyph;
            g.position = ab_glyph::point(pen, baseline);
            if let Some(outline) = self.font.outline_glyph(g) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, cov| {
                    let (px, py) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                    if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height()
                    {
                        let p = img.get_pixel_mut(px as u32, py as u32);
                        for (ch, ink) in p.0.iter_mut().zip(color) {
                            let v = *ch as f32 * (1.0 - cov) + ink as f32 * cov;
                            *ch = v.round().clamp(0.0, 255.0) as u8;
                        }
                    }
                });
            }
            pen += adv;
        }
    }

    /// Draws a label justified over `width` (as licenses print 名　　称).
    fn draw_label(&self, img: &mut RgbImage, label: &str, x: f32, y: f32, size: f32, width: f32) {
        let chars: Vec<char> = label.chars().collect();
        if chars.len() < 2 {
            self.draw(img, label, x, y, size, INK);
            return;
        }
        let step = (width - size) / (chars.len() - 1) as f32;
        for (i, c) in chars.iter().enumerate() {
            self.draw(img, &c.to_string(), x + step * i as f32, y, size, INK);
        }
    }

    /// Renders a clean license image with these fields.
    pub fn render(&self, f: &LicenseFields, scope: &[String], term: &str) -> RgbImage {
        let (w, h) = (1800u32, 1270u32);
        let mut img = RgbImage::from_pixel(w, h, Rgb(PAPER));
        // Double frame, as printed.
        for (inset, thick) in [(30u32, 6u32), (48, 2)] {
            for t in 0..thick {
                let (a, b) = (inset + t, w - inset - t - 1);
                let (c, d) = (inset + t, h - inset - t - 1);
                for x in a..=b {
                    img.put_pixel(x, c, Rgb(FRAME));
                    img.put_pixel(x, d, Rgb(FRAME));
                }
                for y in c..=d {
                    img.put_pixel(a, y, Rgb(FRAME));
                    img.put_pixel(b, y, Rgb(FRAME));
                }
            }
        }
        let title = "营业执照";
        let ts = 110.0;
        let tw = self.text_width(title, ts) + 3.0 * 60.0;
        self.draw_label(&mut img, title, (w as f32 - tw) / 2.0, 170.0, ts, tw);
        let sub = "（副　本）";
        self.draw(
            &mut img,
            sub,
            (w as f32 - self.text_width(sub, 36.0)) / 2.0,
            300.0,
            36.0,
            INK,
        );

        self.draw(&mut img, "统一社会信用代码", 120.0, 130.0, 28.0, INK);
        self.draw(&mut img, &f.uscc, 120.0, 172.0, 30.0, INK);

        let size = 30.0;
        let label_w = 5.0 * size;
        let (lx, rx) = (130.0, 960.0);
        let vgap = 36.0;
        let rows = [
            (("名称", &f.name), ("注册资本", &f.registered_capital)),
            (("类型", &f.kind), ("成立日期", &f.established)),
            (
                ("法定代表人", &f.legal_representative),
                ("营业期限", &term.to_owned()),
            ),
        ];
        let mut y = 400.0;
        for ((ll, lv), (rl, rv)) in rows {
            self.draw_label(&mut img, ll, lx, y, size, label_w);
            self.draw(&mut img, lv, lx + label_w + vgap, y, size, INK);
            self.draw_label(&mut img, rl, rx, y, size, label_w);
            self.draw(&mut img, rv, rx + label_w + vgap, y, size, INK);
            y += 72.0;
        }
        self.draw_label(&mut img, "经营范围", lx, y, size, label_w);
        for (i, line) in scope.iter().enumerate() {
            self.draw(
                &mut img,
                line,
                lx + label_w + vgap,
                y + i as f32 * 46.0,
                26.0,
                INK,
            );
        }
        self.draw_label(&mut img, "住所", rx, y, size, label_w);
        self.draw(&mut img, &f.address, rx + label_w + vgap, y, size, INK);

        // Registration authority, date and a red seal at the bottom right.
        self.draw(&mut img, "登记机关", 1240.0, 1010.0, 30.0, INK);
        let (cx, cy, r) = (1480.0f32, 1050.0f32, 95.0f32);
        for yy in (cy - r - 4.0) as u32..(cy + r + 4.0) as u32 {
            for xx in (cx - r - 4.0) as u32..(cx + r + 4.0) as u32 {
                let d = ((xx as f32 - cx).powi(2) + (yy as f32 - cy).powi(2)).sqrt();
                if (d - r).abs() < 3.5 {
                    let p = img.get_pixel_mut(xx, yy);
                    *p = Rgb([(p.0[0] as u16 * 3 / 4 + 55) as u8, p.0[1] / 3, p.0[2] / 3]);
                }
            }
        }
        self.draw(&mut img, &f.established, 1350.0, 1110.0, 28.0, INK);
        img
    }

    /// Renders and degrades one random license; returns the image (decoded
    /// from its JPEG) and the fields printed on it.
    pub fn random_license<R: Rng>(
        &self,
        rng: &mut R,
        degrade: &Degrade,
    ) -> Result<(DynamicImage, LicenseFields), SynthError> {
        let fields = random_fields(rng);
        let scope = random_scope(rng);
        let term = if rng.gen_bool(0.5) {
            format!("{}至长期", fields.established)
        } else {
            format!(
                "{}至{}",
                fields.established,
                add_years(&fields.established, 30)
            )
        };
        let clean = self.render(&fields, &scope, &term);
        let img = degrade_image(rng, clean, degrade)?;
        Ok((img, fields))
    }
}

const PAPER: [u8; 3] = [246, 243, 234];
const INK: [u8; 3] = [28, 28, 32];
const FRAME: [u8; 3] = [190, 150, 90];

fn add_years(date: &str, years: u32) -> String {
    let y: u32 = date.get(0..4).and_then(|s| s.parse().ok()).unwrap_or(2000);
    format!("{}{}", y + years, date.get(4..).unwrap_or(""))
}

/// Noise, rotation, scale and a JPEG round trip.
fn degrade_image<R: Rng>(
    rng: &mut R,
    img: RgbImage,
    d: &Degrade,
) -> Result<DynamicImage, SynthError> {
    let (w, h) = img.dimensions();
    let angle = rng
        .gen_range(-d.max_rotation_deg..=d.max_rotation_deg)
        .to_radians();
    let scale = rng.gen_range(0.8..=1.0f32);
    let (nw, nh) = ((w as f32 * scale) as u32, (h as f32 * scale) as u32);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let (s, c) = angle.sin_cos();
    let mut out = RgbImage::new(nw, nh);
    let shade = rng.gen_range(0.85..=1.0f32);
    for (x, y, px) in out.enumerate_pixels_mut() {
        // Inverse map: destination → source.
        let (dx, dy) = (x as f32 / scale - cx, y as f32 / scale - cy);
        let (sx, sy) = (c * dx + s * dy + cx, -s * dx + c * dy + cy);
        let v = if sx >= 0.0 && sy >= 0.0 && sx < (w - 1) as f32 && sy < (h - 1) as f32 {
            let (x0, y0) = (sx as u32, sy as u32);
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            let g = |xx, yy| img.get_pixel(xx, yy).0;
            let (a, b, cc, dd) = (g(x0, y0), g(x0 + 1, y0), g(x0, y0 + 1), g(x0 + 1, y0 + 1));
            let mut o = [0f32; 3];
            for k in 0..3 {
                o[k] = (a[k] as f32 * (1.0 - fx) + b[k] as f32 * fx) * (1.0 - fy)
                    + (cc[k] as f32 * (1.0 - fx) + dd[k] as f32 * fx) * fy;
            }
            o
        } else {
            [120.0, 115.0, 110.0]
        };
        let n = if d.noise > 0 {
            rng.gen_range(-(d.noise as f32)..=d.noise as f32)
        } else {
            0.0
        };
        // A lighting gradient across the sheet, like a photo.
        let light = shade + (1.0 - shade) * (x as f32 / nw as f32);
        *px = Rgb(v.map(|ch| (ch * light + n).round().clamp(0.0, 255.0) as u8));
    }
    // Specks of dirt.
    for _ in 0..300 {
        let (x, y) = (rng.gen_range(0..nw), rng.gen_range(0..nh));
        out.put_pixel(x, y, Rgb([90, 90, 90]));
    }
    let q = rng.gen_range(d.jpeg_quality.0..=d.jpeg_quality.1);
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, q)
        .encode_image(&out)
        .map_err(|e| SynthError::Encode(e.to_string()))?;
    image::load_from_memory(&buf).map_err(|e| SynthError::Encode(e.to_string()))
}

fn pick<'a, R: Rng>(rng: &mut R, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

const CITIES: &[(&str, &str, &str, &str)] = &[
    ("山东省", "枣庄市", "市中区", "370402"),
    ("山东省", "枣庄市", "薛城区", "370403"),
    ("山东省", "济南市", "历下区", "370102"),
    ("山东省", "青岛市", "市南区", "370202"),
    ("江苏省", "南京市", "鼓楼区", "320106"),
    ("浙江省", "杭州市", "西湖区", "330106"),
    ("广东省", "深圳市", "南山区", "440305"),
    ("河南省", "郑州市", "金水区", "410105"),
    ("四川省", "成都市", "武侯区", "510107"),
    ("湖北省", "武汉市", "洪山区", "420111"),
];
const BRAND: &[&str] = &[
    "恒", "信", "达", "华", "泰", "鑫", "盛", "源", "瑞", "祥", "宏", "远", "金", "安", "建", "通",
    "博", "创", "联", "兴", "隆", "丰", "嘉", "德", "和", "中", "新", "科", "汇", "诚",
];
const INDUSTRY: &[&str] = &[
    "科技",
    "商贸",
    "建筑工程",
    "信息技术",
    "电子",
    "物流",
    "餐饮管理",
    "环保科技",
    "机械设备",
    "网络科技",
    "建材",
    "医药",
    "文化传媒",
    "电力工程",
    "农业发展",
];
const SUFFIX: &[&str] = &["有限公司", "有限责任公司", "股份有限公司"];
const KINDS: &[&str] = &[
    "有限责任公司（自然人投资或控股）",
    "有限责任公司（自然人独资）",
    "有限责任公司（非自然人投资或控股的法人独资）",
    "股份有限公司（非上市、自然人投资或控股）",
    "其他有限责任公司",
];
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "英", "华", "建", "国", "志", "海", "文", "斌",
];
const ROADS: &[&str] = &[
    "光明路",
    "解放路",
    "人民路",
    "建设路",
    "文化路",
    "青年路",
    "和平路",
    "振兴路",
    "黄河路",
    "长江路",
    "泰山路",
    "科技大道",
    "新华路",
    "中山路",
    "胜利路",
];
const SCOPE: &[&str] = &[
    "一般项目：技术服务、技术开发、技术咨询、技术交流、技术转让、技术推广",
    "软件开发",
    "信息系统集成服务",
    "计算机软硬件及辅助设备零售",
    "办公设备销售",
    "建筑材料销售",
    "五金产品批发",
    "电子产品销售",
    "国内贸易代理",
    "会议及展览服务",
    "企业管理咨询",
    "（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）",
];

/// Chinese financial numerals for 1–9999 (壹仟零伍拾).
fn financial_numeral(n: u32) -> String {
    const D: [&str; 10] = ["零", "壹", "贰", "叁", "肆", "伍", "陆", "柒", "捌", "玖"];
    const U: [&str; 4] = ["仟", "佰", "拾", ""];
    let digits = [n / 1000 % 10, n / 100 % 10, n / 10 % 10, n % 10];
    let mut s = String::new();
    let mut zero = false;
    for (i, &d) in digits.iter().enumerate() {
        if d == 0 {
            zero = !s.is_empty();
            continue;
        }
        if zero {
            s.push_str(D[0]);
            zero = false;
        }
        s.push_str(D[d as usize]);
        s.push_str(U[i]);
    }
    s
}

/// A valid USCC for an enterprise registered by market regulation in `division`.
pub fn random_uscc<R: Rng>(rng: &mut R, division: &str) -> String {
    let mut code = format!("91{division}");
    if rng.gen_bool(0.5) {
        code.push_str("MA");
    }
    while code.len() < 17 {
        let i = if rng.gen_bool(0.7) {
            rng.gen_range(0..10)
        } else {
            rng.gen_range(0..31)
        };
        code.push(USCC_CHARS[i] as char);
    }
    if let Some(c) = uscc_check_char(&code) {
        code.push(c);
    }
    code
}

/// Random plausible license fields.
pub fn random_fields<R: Rng>(rng: &mut R) -> LicenseFields {
    let &(prov, city, district, division) = CITIES.choose(rng).unwrap_or(&CITIES[0]);
    let brand: String = (0..rng.gen_range(2..=3))
        .map(|_| pick(rng, BRAND))
        .collect();
    let name_city = if rng.gen_bool(0.5) {
        city
    } else {
        city.trim_end_matches('市')
    };
    let name = format!(
        "{name_city}{brand}{}{}",
        pick(rng, INDUSTRY),
        pick(rng, SUFFIX)
    );
    let legal: String = std::iter::once(pick(rng, SURNAMES))
        .chain((0..rng.gen_range(1..=2)).map(|_| pick(rng, GIVEN)))
        .collect();
    let mut address = format!(
        "{prov}{city}{district}{}{}号",
        pick(rng, ROADS),
        rng.gen_range(1..400)
    );
    if rng.gen_bool(0.4) {
        address.push_str(&format!(
            "{}号楼{}室",
            rng.gen_range(1..20),
            rng.gen_range(101..2400)
        ));
    }
    let amount = *[50u32, 100, 200, 300, 500, 800, 1000, 2000, 5000]
        .choose(rng)
        .unwrap_or(&100);
    let amount = if rng.gen_bool(0.3) {
        rng.gen_range(10..9999)
    } else {
        amount
    };
    let capital = if rng.gen_bool(0.3) {
        format!("人民币{}万元整", financial_numeral(amount))
    } else {
        format!("{}万元整", financial_numeral(amount))
    };
    let established = format!(
        "{}年{:02}月{:02}日",
        rng.gen_range(1995..=2024),
        rng.gen_range(1..=12),
        rng.gen_range(1..=28)
    );
    LicenseFields {
        name,
        uscc: random_uscc(rng, division),
        kind: pick(rng, KINDS).to_owned(),
        legal_representative: legal,
        address,
        registered_capital: capital,
        established,
    }
}

fn random_scope<R: Rng>(rng: &mut R) -> Vec<String> {
    let mut items: Vec<&str> = SCOPE[1..SCOPE.len() - 1].to_vec();
    items.shuffle(rng);
    let mut text = SCOPE[0].to_owned();
    for it in items.iter().take(rng.gen_range(3..8)) {
        text.push('；');
        text.push_str(it);
    }
    text.push_str(SCOPE[SCOPE.len() - 1]);
    // 22 characters a line fit the left column.
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(22).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn financial_numerals() {
        assert_eq!(financial_numeral(1000), "壹仟");
        assert_eq!(financial_numeral(1050), "壹仟零伍拾");
        assert_eq!(financial_numeral(205), "贰佰零伍");
        assert_eq!(financial_numeral(10), "壹拾");
        assert_eq!(financial_numeral(5000), "伍仟");
    }
}

/// Field accuracy over generated licenses.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Licenses read.
    pub licenses: usize,
    /// Fields compared (7 per license).
    pub fields: usize,
    /// Fields read exactly right.
    pub correct: usize,
    /// Total time spent in OCR and parsing.
    pub elapsed: std::time::Duration,
    /// Slowest single license.
    pub slowest: std::time::Duration,
    /// `(field, expected, got)` for every miss.
    pub misses: Vec<(&'static str, String, String)>,
}

impl Report {
    /// Share of fields exactly right, 0–1.
    pub fn accuracy(&self) -> f64 {
        if self.fields == 0 {
            0.0
        } else {
            self.correct as f64 / self.fields as f64
        }
    }

    /// Mean time per license.
    pub fn per_license(&self) -> std::time::Duration {
        self.elapsed / (self.licenses.max(1) as u32)
    }
}

/// Generates `n` licenses from `seed`, reads each with `ocr`, and compares
/// every field with what was printed. Only OCR and parsing are timed.
pub fn evaluate(
    ocr: &crate::Ocr,
    renderer: &Renderer,
    n: usize,
    seed: u64,
) -> Result<Report, Box<dyn std::error::Error>> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut report = Report::default();
    let degrade = Degrade::default();
    for _ in 0..n {
        let (img, truth) = renderer.random_license(&mut rng, &degrade)?;
        let start = std::time::Instant::now();
        // As CertHall reads: turned upright, then the lines a field can be in.
        let (lines, _) = ocr.read_license_lines(&img)?;
        let got = crate::read_business_license(&lines);
        let took = start.elapsed();
        report.elapsed += took;
        report.slowest = report.slowest.max(took);
        report.licenses += 1;
        let pairs = [
            ("name", &truth.name, &got.name),
            ("uscc", &truth.uscc, &got.uscc),
            ("kind", &truth.kind, &got.kind),
            (
                "legal_representative",
                &truth.legal_representative,
                &got.legal_representative,
            ),
            ("address", &truth.address, &got.address),
            (
                "registered_capital",
                &truth.registered_capital,
                &got.registered_capital,
            ),
            ("established", &truth.established, &got.established),
        ];
        for (field, want, have) in pairs {
            report.fields += 1;
            if want == have {
                report.correct += 1;
            } else {
                report.misses.push((field, want.clone(), have.clone()));
            }
        }
    }
    Ok(report)
}
