//! Plane geometry for text boxes: convex hull, minimum-area rectangle
//! (what OpenCV's `minAreaRect` gives PaddleOCR), and quadrilateral crops.

use image::{Rgb, RgbImage};

/// A point in image coordinates (x to the right, y down), in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    /// Horizontal coordinate.
    pub x: f32,
    /// Vertical coordinate.
    pub y: f32,
}

impl Point {
    /// A point at (x, y).
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }

    fn dist(self, o: Point) -> f32 {
        ((self.x - o.x).powi(2) + (self.y - o.y).powi(2)).sqrt()
    }
}

/// A text box as four corners in reading order: top-left, top-right,
/// bottom-right, bottom-left. Usually a slightly rotated rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Quad(pub [Point; 4]);

impl Quad {
    /// Smallest x of the corners.
    pub fn left(&self) -> f32 {
        self.0.iter().map(|p| p.x).fold(f32::INFINITY, f32::min)
    }
    /// Largest x of the corners.
    pub fn right(&self) -> f32 {
        self.0.iter().map(|p| p.x).fold(f32::NEG_INFINITY, f32::max)
    }
    /// Smallest y of the corners.
    pub fn top(&self) -> f32 {
        self.0.iter().map(|p| p.y).fold(f32::INFINITY, f32::min)
    }
    /// Largest y of the corners.
    pub fn bottom(&self) -> f32 {
        self.0.iter().map(|p| p.y).fold(f32::NEG_INFINITY, f32::max)
    }
    /// Centre of the corners.
    pub fn center(&self) -> Point {
        let (sx, sy) = self
            .0
            .iter()
            .fold((0.0, 0.0), |(a, b), p| (a + p.x, b + p.y));
        Point::new(sx / 4.0, sy / 4.0)
    }
    /// Width along the box's own horizontal edges.
    pub fn width(&self) -> f32 {
        let [tl, tr, br, bl] = self.0;
        tl.dist(tr).max(bl.dist(br))
    }
    /// Height along the box's own vertical edges.
    pub fn height(&self) -> f32 {
        let [tl, tr, br, bl] = self.0;
        tl.dist(bl).max(tr.dist(br))
    }
}

fn cross(o: (i32, i32), a: (i32, i32), b: (i32, i32)) -> i64 {
    (a.0 - o.0) as i64 * (b.1 - o.1) as i64 - (a.1 - o.1) as i64 * (b.0 - o.0) as i64
}

/// Convex hull (Andrew's monotone chain), counter-clockwise, no duplicates.
pub(crate) fn convex_hull(mut pts: Vec<(i32, i32)>) -> Vec<(i32, i32)> {
    pts.sort_unstable();
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let mut hull: Vec<(i32, i32)> = Vec::with_capacity(pts.len() * 2);
    for &p in pts.iter().chain(pts.iter().rev().skip(1)) {
        while hull.len() >= 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0 {
            hull.pop();
        }
        hull.push(p);
    }
    hull.pop();
    hull
}

/// A rotated rectangle: centre, unit axis along its width, half extents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RotRect {
    pub cx: f32,
    pub cy: f32,
    pub ux: f32,
    pub uy: f32,
    pub half_w: f32,
    pub half_h: f32,
}

impl RotRect {
    pub fn short_side(&self) -> f32 {
        2.0 * self.half_w.min(self.half_h)
    }

    /// The same rectangle grown by `d` on every side.
    pub fn grown(self, d: f32) -> Self {
        Self {
            half_w: self.half_w + d,
            half_h: self.half_h + d,
            ..self
        }
    }

    /// Corners ordered as PaddleOCR's `get_mini_boxes` does: of the two
    /// leftmost corners the upper is top-left, of the two rightmost the upper
    /// is top-right.
    pub fn quad(&self) -> Quad {
        let (vx, vy) = (-self.uy, self.ux);
        let mut c: Vec<Point> = [(1.0, 1.0), (1.0, -1.0), (-1.0, -1.0), (-1.0, 1.0)]
            .iter()
            .map(|(a, b)| {
                Point::new(
                    self.cx + a * self.half_w * self.ux + b * self.half_h * vx,
                    self.cy + a * self.half_w * self.uy + b * self.half_h * vy,
                )
            })
            .collect();
        c.sort_by(|a, b| a.x.total_cmp(&b.x));
        let (tl, bl) = if c[0].y <= c[1].y {
            (c[0], c[1])
        } else {
            (c[1], c[0])
        };
        let (tr, br) = if c[2].y <= c[3].y {
            (c[2], c[3])
        } else {
            (c[3], c[2])
        };
        Quad([tl, tr, br, bl])
    }
}

/// Minimum-area enclosing rectangle of a point set (rotating calipers over
/// the convex hull's edges).
pub(crate) fn min_area_rect(points: Vec<(i32, i32)>) -> Option<RotRect> {
    let hull = convex_hull(points);
    if hull.is_empty() {
        return None;
    }
    if hull.len() < 3 {
        let (a, b) = (hull[0], hull[hull.len() - 1]);
        let (dx, dy) = ((b.0 - a.0) as f32, (b.1 - a.1) as f32);
        let len = (dx * dx + dy * dy).sqrt();
        let (ux, uy) = if len > 0.0 {
            (dx / len, dy / len)
        } else {
            (1.0, 0.0)
        };
        return Some(RotRect {
            cx: (a.0 + b.0) as f32 / 2.0,
            cy: (a.1 + b.1) as f32 / 2.0,
            ux,
            uy,
            half_w: len / 2.0,
            half_h: 0.0,
        });
    }
    let mut best: Option<(f32, RotRect)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let (dx, dy) = ((b.0 - a.0) as f32, (b.1 - a.1) as f32);
        let len = (dx * dx + dy * dy).sqrt();
        if len == 0.0 {
            continue;
        }
        let (ux, uy) = (dx / len, dy / len);
        let (vx, vy) = (-uy, ux);
        let (mut u0, mut u1, mut v0, mut v1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for &(px, py) in &hull {
            let (px, py) = (px as f32, py as f32);
            let u = px * ux + py * uy;
            let v = px * vx + py * vy;
            u0 = u0.min(u);
            u1 = u1.max(u);
            v0 = v0.min(v);
            v1 = v1.max(v);
        }
        let area = (u1 - u0) * (v1 - v0);
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            let (cu, cv) = ((u0 + u1) / 2.0, (v0 + v1) / 2.0);
            // Keep the width axis pointing rightwards so "width" is along the text.
            let mut r = RotRect {
                cx: cu * ux + cv * vx,
                cy: cu * uy + cv * vy,
                ux,
                uy,
                half_w: (u1 - u0) / 2.0,
                half_h: (v1 - v0) / 2.0,
            };
            if r.ux.abs() < r.uy.abs() {
                r = RotRect {
                    ux: vx,
                    uy: vy,
                    half_w: r.half_h,
                    half_h: r.half_w,
                    ..r
                };
            }
            if r.ux < 0.0 {
                r.ux = -r.ux;
                r.uy = -r.uy;
            }
            best = Some((area, r));
        }
    }
    best.map(|(_, r)| r)
}

fn sample(img: &RgbImage, x: f32, y: f32) -> Rgb<u8> {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as i64, y.floor() as i64);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |xx: i64, yy: i64| img.get_pixel(xx as u32, yy as u32).0;
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    let mut out = [0u8; 3];
    for k in 0..3 {
        let top = a[k] as f32 * (1.0 - fx) + b[k] as f32 * fx;
        let bot = c[k] as f32 * (1.0 - fx) + d[k] as f32 * fx;
        out[k] = (top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8;
    }
    Rgb(out)
}

/// Cuts a quadrilateral out of `img` and straightens it into a rectangle
/// (bilinear mapping of the four corners; exact for the rotated rectangles
/// the detector produces). Tall crops are turned a quarter, as PaddleOCR's
/// `get_rotate_crop_image` does, so vertical text reads left to right.
pub(crate) fn crop_quad(img: &RgbImage, q: &Quad) -> RgbImage {
    let [tl, tr, br, bl] = q.0;
    let w = tl.dist(tr).max(bl.dist(br)).round().max(1.0) as u32;
    let h = tl.dist(bl).max(tr.dist(br)).round().max(1.0) as u32;
    let mut out = RgbImage::new(w, h);
    for (x, y, px) in out.enumerate_pixels_mut() {
        let u = (x as f32 + 0.5) / w as f32;
        let v = (y as f32 + 0.5) / h as f32;
        let top = (tl.x + (tr.x - tl.x) * u, tl.y + (tr.y - tl.y) * u);
        let bot = (bl.x + (br.x - bl.x) * u, bl.y + (br.y - bl.y) * u);
        let sx = top.0 + (bot.0 - top.0) * v - 0.5;
        let sy = top.1 + (bot.1 - top.1) * v - 0.5;
        *px = sample(img, sx, sy);
    }
    if h as f32 / w as f32 >= 1.5 {
        image::imageops::rotate270(&out)
    } else {
        out
    }
}

/// Whether `p` lies inside the convex quadrilateral `q` (either winding).
pub(crate) fn inside_convex(q: &Quad, p: Point) -> bool {
    let mut sign = 0i8;
    for i in 0..4 {
        let (a, b) = (q.0[i], q.0[(i + 1) % 4]);
        let c = (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x);
        let s = if c > 0.0 {
            1
        } else if c < 0.0 {
            -1
        } else {
            0
        };
        if s != 0 {
            if sign != 0 && s != sign {
                return false;
            }
            sign = s;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_area_rect_of_axis_aligned_block() {
        let pts: Vec<(i32, i32)> = (10..=50)
            .flat_map(|x| (20..=30).map(move |y| (x, y)))
            .collect();
        let r = min_area_rect(pts).unwrap_or_else(|| unreachable!());
        assert!((r.half_w * 2.0 - 40.0).abs() < 1e-3, "{r:?}");
        assert!((r.half_h * 2.0 - 10.0).abs() < 1e-3, "{r:?}");
        let q = r.quad();
        assert_eq!(q.0[0], Point::new(10.0, 20.0));
        assert_eq!(q.0[2], Point::new(50.0, 30.0));
    }

    #[test]
    fn min_area_rect_of_rotated_line() {
        // A 100x10 bar rotated by ~3 degrees.
        let a = 3f32.to_radians();
        let mut pts = Vec::new();
        for u in 0..100 {
            for v in 0..10 {
                let (u, v) = (u as f32, v as f32);
                pts.push((
                    (u * a.cos() - v * a.sin()).round() as i32,
                    (u * a.sin() + v * a.cos()).round() as i32,
                ));
            }
        }
        let r = min_area_rect(pts).unwrap_or_else(|| unreachable!());
        assert!((r.uy / r.ux).atan().to_degrees() - 3.0 < 1.0, "{r:?}");
        assert!(r.half_w > 45.0 && r.half_h < 7.0, "{r:?}");
    }
}
