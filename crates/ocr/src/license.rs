//! Picks the fields of a business license (营业执照) out of OCR lines.
//!
//! Licenses print `label value` pairs, in one or two columns (the 2019
//! template puts 名称/类型/法定代表人/经营范围 left and
//! 注册资本/成立日期/营业期限/住所 right), with labels spread out
//! (`名　　称`). The detector may return a label and its value as one box
//! or several, so boxes are first grouped into rows, joined left to right,
//! and the row text is split at the labels it contains. The USCC
//! (GB 32100) is found wherever an 18-character code with a valid check
//! character appears, since it usually sits under its label.

use crate::TextLine;

/// The fields read from a business license. Empty when not found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LicenseFields {
    /// 名称
    pub name: String,
    /// 统一社会信用代码 (GB 32100)
    pub uscc: String,
    /// 类型
    pub kind: String,
    /// 法定代表人 (or 负责人, 经营者, 执行事务合伙人)
    pub legal_representative: String,
    /// 住所 (or 经营场所, 主要经营场所)
    pub address: String,
    /// 注册资本 (or 出资额)
    pub registered_capital: String,
    /// 成立日期 (or 注册日期)
    pub established: String,
}

impl LicenseFields {
    /// Each field with its key (the names of [`Field`]'s keys and of the
    /// step-3 form), in the form's order.
    pub fn entries(&self) -> [(&'static str, &str); 7] {
        [
            ("name", &self.name),
            ("uscc", &self.uscc),
            ("kind", &self.kind),
            ("legal_representative", &self.legal_representative),
            ("address", &self.address),
            ("registered_capital", &self.registered_capital),
            ("established", &self.established),
        ]
    }
}

/// The USCC alphabet (GB 32100): digits and capitals without I O S V Z,
/// valued 0–30 in this order.
#[cfg(feature = "synth")]
pub(crate) const USCC_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// The check character for the first 17 characters of a USCC (GB 32100;
/// the domain's implementation, so the OCR and the forms agree).
#[cfg(feature = "synth")]
pub(crate) fn uscc_check_char(first17: &str) -> Option<char> {
    certhall_domain::identity::uscc_check_char(first17)
}

/// Whether `code` is a well-formed USCC with a correct check character.
pub fn uscc_is_valid(code: &str) -> bool {
    certhall_domain::identity::Uscc::is_valid_canonical(code)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Uscc,
    Kind,
    Legal,
    Address,
    Capital,
    Established,
    /// Labels that end a value but are not read (经营范围, 组成形式, …).
    Other,
    /// 营业期限 (合伙期限, 经营期限): not a field, but it starts on the
    /// day of establishment, which it gives when 成立日期 cannot be read.
    Term,
    /// The issuing office at the foot of the page: ends a value, but is
    /// not a column of the body.
    Foot,
}

impl Field {
    /// The field's name, as in the domain's `EnterpriseInput`.
    fn key(self) -> Option<&'static str> {
        Some(match self {
            Field::Name => "name",
            Field::Uscc => "uscc",
            Field::Kind => "kind",
            Field::Legal => "legal_representative",
            Field::Address => "address",
            Field::Capital => "registered_capital",
            Field::Established => "established",
            Field::Other | Field::Term | Field::Foot => return None,
        })
    }
}

/// A label as printed, and the field it names.
type Label = (&'static str, Field);

/// Labels of the 2016+ templates (企业, 个体工商户, 农民专业合作社,
/// 合伙企业, 分支机构), longest first where one contains another.
const LABELS: &[Label] = &[
    ("统一社会信用代码", Field::Uscc),
    ("名称", Field::Name),
    ("类型", Field::Kind),
    ("法定代表人", Field::Legal),
    ("执行事务合伙人", Field::Legal),
    ("投资人", Field::Legal),
    ("负责人", Field::Legal),
    ("经营者", Field::Legal),
    ("主要经营场所", Field::Address),
    ("经营场所", Field::Address),
    ("营业场所", Field::Address),
    ("住所", Field::Address),
    ("成员出资总额", Field::Capital),
    ("注册资本", Field::Capital),
    ("出资总额", Field::Capital),
    ("出资额", Field::Capital),
    ("成立日期", Field::Established),
    ("注册日期", Field::Established),
    ("营业期限", Field::Term),
    ("合伙期限", Field::Term),
    ("经营期限", Field::Term),
    ("经营范围", Field::Other),
    ("业务范围", Field::Other),
    ("组成形式", Field::Other),
    ("登记机关", Field::Foot),
];

/// Labels this short are only taken at the start of a detected box: as
/// words inside a value (…各类型…) they are not labels.
const SHORT_LABEL: usize = 3;

/// The slope of a box's top edge, when the box is wide enough for it to
/// mean anything (a single character's box may be turned any way).
fn slope_of(q: &crate::Quad) -> Option<f32> {
    let [tl, tr, _, _] = q.0;
    let (w, h) = (tr.x - tl.x, q.height());
    (w > 3.0 * h.max(1.0)).then(|| (tr.y - tl.y) / w)
}

/// Boxes grouped into rows, each row's boxes left to right. A photo is
/// rarely level: rows follow the page's slope (the median of the wide
/// boxes' slopes, or a wide box's own where the row has one, since
/// perspective bends the slope across the page).
fn rows(lines: &[TextLine]) -> Vec<Vec<&TextLine>> {
    let mut slopes: Vec<f32> = lines.iter().filter_map(|l| slope_of(&l.bbox)).collect();
    slopes.sort_by(f32::total_cmp);
    let skew = slopes.get(slopes.len() / 2).copied().unwrap_or(0.0);
    let off_slope = |l: &TextLine| slope_of(&l.bbox).is_some_and(|s| (s - skew).abs() > MAX_SLOPE);
    let level = |l: &TextLine| {
        let c = l.bbox.center();
        c.y - skew * c.x
    };
    let mut sorted: Vec<&TextLine> = lines.iter().collect();
    sorted.sort_by(|a, b| level(a).total_cmp(&level(b)));
    let mut rows: Vec<Vec<&TextLine>> = Vec::new();
    for l in sorted {
        let c = l.bbox.center();
        let h = l.bbox.height().max(1.0);
        // A line at a slant to the page (a watermark's) is a row of its
        // own: it neither joins a row nor draws the next line into its.
        let fits = !off_slope(l)
            && rows.last().is_some_and(|row| {
                // Measured from the row's widest box, along its slope.
                let Some(r) = row.iter().max_by(|a, b| {
                    (a.bbox.right() - a.bbox.left()).total_cmp(&(b.bbox.right() - b.bbox.left()))
                }) else {
                    return false;
                };
                if off_slope(r) {
                    return false;
                }
                let rc = r.bbox.center();
                let slope = slope_of(&r.bbox).unwrap_or(skew);
                let expected = rc.y + slope * (c.x - rc.x);
                (c.y - expected).abs() < 0.5 * h.min(r.bbox.height().max(1.0))
            });
        match rows.last_mut() {
            Some(row) if fits => row.push(l),
            _ => rows.push(vec![l]),
        }
    }
    for row in &mut rows {
        row.sort_by(|a, b| a.bbox.left().total_cmp(&b.bbox.left()));
    }
    rows
}

/// A row's text as characters, each knowing its box and where in the box
/// it stands (to place labels and values on the page).
struct RowText<'a> {
    boxes: Vec<&'a TextLine>,
    chars: Vec<char>,
    /// Index into `boxes` of each character.
    owner: Vec<usize>,
    /// Position of each character within its box's text.
    offset: Vec<usize>,
    /// How many characters each box holds.
    count: Vec<usize>,
}

impl<'a> RowText<'a> {
    fn new(boxes: Vec<&'a TextLine>) -> Self {
        let (mut chars, mut owner, mut offset) = (Vec::new(), Vec::new(), Vec::new());
        let mut count = Vec::with_capacity(boxes.len());
        for (b, l) in boxes.iter().enumerate() {
            let text = squash(&l.text);
            count.push(text.chars().count());
            for (k, c) in text.chars().enumerate() {
                chars.push(c);
                owner.push(b);
                offset.push(k);
            }
        }
        Self {
            boxes,
            chars,
            owner,
            offset,
            count,
        }
    }

    /// Estimated x of the left edge of character `i` (characters are
    /// spread evenly over their box).
    fn x_of(&self, i: usize) -> f32 {
        let b = self.boxes[self.owner[i]];
        let n = self.count[self.owner[i]].max(1) as f32;
        let (l, r) = (b.bbox.left(), b.bbox.right());
        l + (r - l) * self.offset[i] as f32 / n
    }

    /// The labels in this row, left to right, without overlaps:
    /// `(first char, end char, field)`.
    fn labels(&self) -> Vec<(usize, usize, &'static Label)> {
        let mut hits = Vec::new();
        let mut i = 0;
        while i < self.chars.len() {
            let found = LABELS.iter().find_map(|entry| {
                let &(label, _) = entry;
                let n = label.chars().count();
                let here = self.chars.get(i..i + n)?;
                let at_start =
                    self.offset[i] == 0 || (self.offset[i] == 1 && !is_cjk(self.chars[i - 1]));
                (here.iter().copied().eq(label.chars()) && (at_start || n > SHORT_LABEL))
                    .then_some((i, i + n, entry))
            });
            match found.or_else(|| self.spread_label(i)) {
                Some(hit) => {
                    hits.push(hit);
                    i = hit.1;
                }
                None => i += 1,
            }
        }
        hits
    }

    /// A two-character label printed spread out (名　　称) whose characters
    /// were detected as boxes of their own with something between them
    /// (a watermark's or a seal's character): the first character alone
    /// in its box, the second starting one of the next boxes close by.
    fn spread_label(&self, i: usize) -> Option<(usize, usize, &'static Label)> {
        let first = self.owner[i];
        let b = self.boxes[first];
        if self.offset[i] != 0 || self.count[first] != 1 {
            return None;
        }
        LABELS.iter().find_map(|entry| {
            let &(label, _) = entry;
            let mut cs = label.chars();
            let (c1, c2) = (cs.next()?, cs.next()?);
            if cs.next().is_some() {
                return None;
            }
            // Only the second character was detected (the first lost to
            // a seal or a fold), with its value beside it.
            if self.chars[i] == c2
                && (i == 0 || self.chars[i - 1] != c1)
                && self.owner.get(i + 1).is_some_and(|&o| self.count[o] > 2)
            {
                return Some((i, i + 1, entry));
            }
            if self.chars[i] != c1 {
                return None;
            }
            let h = b.bbox.height().max(1.0);
            let near = |j: usize| self.boxes[self.owner[j]].bbox.left() - b.bbox.right() < 6.0 * h;
            let second = (i + 1..self.chars.len())
                .take_while(|&j| self.owner[j] <= first + 3)
                .find(|&j| {
                    // The second character starts its box, or follows a
                    // stray mark in a box of a few characters (与型).
                    let in_short = self.offset[j] == 1 && self.count[self.owner[j]] <= 3;
                    (self.offset[j] == 0 || in_short) && self.chars[j] == c2 && near(j)
                })
                .map(|j| (i, j + 1, entry));
            // Only the first character was detected, its value beside it,
            // perhaps past a stray character or two of a watermark (住 公
            // 云南省…): the label ends where the value's box starts.
            second.or_else(|| {
                let value =
                    (first + 1..self.boxes.len().min(first + 3)).find(|&o| self.count[o] > 2)?;
                let next = self.owner.iter().position(|&o| o == value)?;
                ((first + 1..value).all(|o| self.count[o] <= 2)
                    && !self.chars[i + 1..next].contains(&c2)
                    && self.chars[next] != c2
                    && near(next))
                .then_some((i, next, entry))
            })
        })
    }
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// A label found on the page and where its value lies.
struct Anchor {
    row: usize,
    field: Field,
    /// The label as listed in [`LABELS`] (however it was spaced).
    label: &'static str,
    /// Left edge of the label.
    left: f32,
    /// Line height of the label's row.
    height: f32,
    /// The value characters on the label's own row.
    value: std::ops::Range<usize>,
}

/// Text without spaces and with the colons that sometimes follow labels.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '　' && !is_mark(*c))
        .collect()
}

/// Arrows, shapes, box drawing, dingbats (☑ ■ ★ ※): never printed in a
/// license's text, but what the recogniser makes of a stray stroke.
fn is_mark(c: char) -> bool {
    ('\u{2190}'..='\u{2bff}').contains(&c)
}

/// Chinese text uses full-width brackets; OCR returns either.
fn normalize_text(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| match c {
            '(' => '（',
            ')' => '）',
            ',' => '，',
            ';' => '；',
            '丶' => '、',
            _ => c,
        })
        .collect();
    s.trim_matches(|c: char| c == ':' || c == '：' || c == '.' || c == '，' || c.is_whitespace())
        .to_owned()
}

/// Dates as printed: digits as ASCII, `年月日` kept.
fn normalize_date(s: &str) -> String {
    squash(s)
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '年' | '月' | '日'))
        .collect()
}

/// Maps look-alike characters into the USCC alphabet and checks the result.
fn uscc_candidate(token: &str) -> Option<String> {
    let code: String = token
        .chars()
        .map(|c| match c.to_ascii_uppercase() {
            'O' | 'Ｏ' => '0',
            'I' | '|' | 'Ｉ' => '1',
            'Z' => '2',
            'S' => '5',
            'V' => 'U',
            c => c,
        })
        .collect();
    (code.chars().count() == 18 && uscc_is_valid(&code)).then_some(code)
}

/// Finds the USCC: any 18-character run of code-like characters whose check
/// character is right (with the confidence of its line); failing that, a
/// one-character repair of the first such run, or the run as read (the
/// domain leaves a code that fails its check empty), both unsure.
fn find_uscc(lines: &[TextLine]) -> (String, f32) {
    let mut fallback = None;
    for l in lines {
        let t: Vec<char> = squash(&l.text)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '|')
            .collect();
        for i in 0..t.len().saturating_sub(17) {
            let token: String = t[i..i + 18].iter().collect();
            if let Some(code) = uscc_candidate(&token) {
                return (code, l.confidence);
            }
            if fallback.is_none() && token.chars().filter(char::is_ascii_digit).count() >= 8 {
                fallback = Some(token.to_ascii_uppercase());
            }
        }
    }
    // As read, even when its check character fails: the domain leaves such
    // a code empty for the applicant to type. (Repairing one character
    // until the check passes would turn a misprint or a forgery into a
    // code that looks right.)
    match fallback {
        Some(t) => (t, 0.0),
        None => (String::new(), 0.0),
    }
}

/// Boxes narrower than this many line heights are read first (labels,
/// short values); see [`outside_scope`].
pub(crate) const SHORT_BOX: f32 = 5.0;
/// Boxes lower than this share of the median box height are small print
/// (the footer, the QR code's caption, a seal's ring): never a field.
pub(crate) const SMALL_PRINT: f32 = 0.7;

/// Which of the `long` boxes (not yet read) can hold a field, given the
/// short lines already read: false for those in the 经营范围 (业务范围)
/// block, i.e. below its label, in its column. The block is the last of
/// its column on every template, so it runs to the foot of the page.
pub(crate) fn outside_scope(short: &[TextLine], long: &[crate::Quad]) -> Vec<bool> {
    let labels: Vec<(&TextLine, bool)> = short
        .iter()
        .filter_map(|l| {
            let t = squash(&l.text);
            let t = t.trim_end_matches([':', '：']);
            let is_scope = t == "经营范围" || t == "业务范围";
            // A label, or one character of a spread-out one (住　　所).
            let spread = t.chars().count() == 1
                && LABELS
                    .iter()
                    .any(|(label, _)| label.chars().count() == 2 && label.contains(t));
            (spread || LABELS.iter().any(|(label, _)| t == *label)).then_some((l, is_scope))
        })
        .collect();
    let scopes: Vec<(&TextLine, f32)> = labels
        .iter()
        .filter(|(_, scope)| *scope)
        .map(|&(s, _)| {
            let h = s.bbox.height();
            // The column ends at the nearest label to the right.
            let right = labels
                .iter()
                .map(|(o, _)| o.bbox.left())
                .filter(|&x| x > s.bbox.right() + 2.0 * h)
                .fold(f32::INFINITY, f32::min);
            (s, right)
        })
        .collect();
    long.iter()
        .map(|q| {
            let c = q.center();
            !scopes.iter().any(|(s, right)| {
                let h = s.bbox.height();
                c.y > s.bbox.center().y - 0.5 * h
                    && q.left() > s.bbox.right() - h
                    && q.left() < right - h
            })
        })
        .collect()
}

/// A license as read from OCR lines: the fields, how sure the reading is
/// of each, and how much of the page looked like a license.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LicenseRead {
    /// The fields (empty when not found).
    pub fields: LicenseFields,
    /// Per field (by name: `name`, `uscc`, `kind`, `legal_representative`,
    /// `address`, `registered_capital`, `established`): the lowest
    /// recognition confidence of the lines its value came from, 0–1;
    /// absent when the field was not found.
    pub confidence: std::collections::BTreeMap<&'static str, f32>,
    /// How many of the marks a license prints were seen: its title
    /// 营业执照 and its distinct labels.
    pub marks: u32,
    /// An 个体工商户's license (经营者, 经营场所; no capital printed).
    pub individual: bool,
}

/// Below this confidence a field is marked for checking (请核对): the
/// recogniser's character probabilities on clean print are above 0.95,
/// and misread lines fall well under it.
pub const UNSURE_BELOW: f32 = 0.9;

impl LicenseRead {
    /// The fields the applicant should check against the license: read
    /// with low confidence, not found although every license of its kind
    /// prints them, or read but malformed (a date that is no date).
    pub fn unsure(&self) -> Vec<&'static str> {
        self.fields
            .entries()
            .into_iter()
            .filter(|&(key, value)| {
                let printed = !(self.individual && key == "registered_capital");
                let low = self.confidence.get(key).is_none_or(|&c| c < UNSURE_BELOW);
                let malformed = match key {
                    "established" => !value.is_empty() && !is_date(value),
                    "uscc" => !value.is_empty() && !uscc_is_valid(value),
                    _ => false,
                };
                (printed && value.is_empty()) || (!value.is_empty() && low) || malformed
            })
            .map(|(key, _)| key)
            .collect()
    }
}

/// The first `YYYY年M月D日` in `raw`, digits zero-padded; else the digits
/// and 年月日 as read (left for the applicant to check).
fn first_date(raw: &str) -> String {
    let t = normalize_date(raw);
    let chars: Vec<char> = t.chars().collect();
    for i in 0..chars.len() {
        let digits = |from: usize, max: usize| -> (String, usize) {
            let d: String = chars[from..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .take(max)
                .collect();
            let n = d.chars().count();
            (d, from + n)
        };
        let (y, j) = digits(i, 4);
        if y.len() != 4 || chars.get(j) != Some(&'年') {
            continue;
        }
        let (m, k) = digits(j + 1, 2);
        if m.is_empty() || chars.get(k) != Some(&'月') {
            continue;
        }
        let (d, l) = digits(k + 1, 2);
        if d.is_empty() || chars.get(l) != Some(&'日') {
            continue;
        }
        return format!("{y}年{m:0>2}月{d:0>2}日");
    }
    t
}

/// An enterprise name ends with its form (有限公司, 合作社, （有限合伙）…).
const NAME_ENDINGS: &[&str] = &[
    "公司",
    "合作社",
    "（有限合伙）",
    "（普通合伙）",
    "企业",
    "厂",
    "店",
    "馆",
    "部",
    "中心",
    "事务所",
    "商行",
    "工作室",
    "门市",
];

/// A 类型 ends with a form or its bracketed qualifier (…公司（自然人独资）,
/// 个体工商户, 农民专业合作社, 有限合伙企业).
/// The forms most 类型 values start with.
const KIND_STEMS: &[&str] = &["有限责任公司", "股份有限公司"];
const KIND_ENDINGS: &[&str] = &["）", "公司", "企业", "工商户", "合作社", "分支机构"];

/// `value` without what follows its last `ending` when that is short (a
/// watermark's, a seal's or the next field's few characters, beside the
/// value on its line): at most `max_tail` characters, not a bracket.
fn trim_after(value: &str, endings: &[&str], max_tail: usize) -> String {
    let end = endings
        .iter()
        .filter_map(|e| value.rfind(e).map(|i| i + e.len()))
        .max();
    match end {
        Some(end)
            if end < value.len()
                && value[end..].chars().count() <= max_tail
                && !value[end..].contains('（') =>
        {
            value[..end].to_owned()
        }
        _ => value.to_owned(),
    }
}

/// `2015年03月12日` with a real month and day.
fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.trim_end_matches('日').split(['年', '月']).collect();
    match parts.as_slice() {
        [y, m, d] => {
            let num = |p: &str| p.parse::<u32>().ok();
            matches!((num(y), num(m), num(d)), (Some(y), Some(m), Some(d))
                if (1949..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d))
        }
        _ => false,
    }
}

/// Reads the license fields from OCR lines (as [`crate::Ocr::read_lines`]
/// returns them). Fields not found stay empty.
pub fn read_business_license(lines: &[TextLine]) -> LicenseFields {
    read_license(lines).fields
}

/// Reads a license from OCR lines, by the page's geometry: each label
/// anchors its value, which runs to the right up to the next label of the
/// row or the next column's labels, and down over continuation lines in
/// the same column (a wrapped 类型 or 住所) until the next label of that
/// column or a gap wider than the line spacing.
pub fn read_license(lines: &[TextLine]) -> LicenseRead {
    let rows: Vec<RowText> = rows(lines).into_iter().map(RowText::new).collect();
    let anchors = anchors(&rows);
    read_page(lines, &rows, &anchors)
}

/// [`read_license`] of a page already grouped into rows and labels.
fn read_page(lines: &[TextLine], rows: &[RowText], anchors: &[Anchor]) -> LicenseRead {
    let mut out = LicenseRead::default();
    let mut seen_labels: Vec<&str> = Vec::new();
    for a in anchors {
        // Each field once (名称 and 名　称 alike); other labels by name.
        let id = a.field.key().unwrap_or(a.label);
        if !seen_labels.contains(&id) {
            seen_labels.push(id);
        }
        if a.label == "经营者" {
            out.individual = true;
        }
    }
    let title = lines.iter().any(|l| squash(&l.text).contains("营业执照"));
    out.marks = seen_labels.len() as u32 + u32::from(title);

    for (i, a) in anchors.iter().enumerate() {
        let Some(key) = a.field.key() else { continue };
        if a.field == Field::Uscc || out.confidence.contains_key(key) {
            continue;
        }
        let right = column_right(anchors, rows, i);
        let value = value_of(rows, anchors, a, right);
        let (text, conf) = (clean_value(a.field, &value.text), value.conf);
        if text.is_empty() {
            continue;
        }
        out.confidence.insert(key, conf);
        let slot = match a.field {
            Field::Name => &mut out.fields.name,
            Field::Kind => &mut out.fields.kind,
            Field::Legal => &mut out.fields.legal_representative,
            Field::Address => &mut out.fields.address,
            Field::Capital => &mut out.fields.registered_capital,
            Field::Established => &mut out.fields.established,
            Field::Uscc | Field::Other | Field::Term | Field::Foot => continue,
        };
        *slot = text;
    }
    if out.fields.established.is_empty() {
        // 营业期限 runs from the day of establishment: its first date, for
        // the applicant to check.
        let term = anchors
            .iter()
            .enumerate()
            .find(|(_, a)| a.field == Field::Term);
        if let Some((i, a)) = term {
            let value = value_of(rows, anchors, a, column_right(anchors, rows, i));
            let date = first_date(&value.text);
            if is_date(&date) {
                out.fields.established = date;
                out.confidence
                    .insert("established", value.conf.min(UNSURE_BELOW / 2.0));
            }
        }
    }
    if out.fields.kind.contains("个体工商户") {
        out.individual = true;
    }
    let (uscc, conf) = find_uscc(lines);
    if !uscc.is_empty() {
        out.fields.uscc = uscc;
        out.confidence.insert("uscc", conf);
    }
    if out.fields.name.is_empty() {
        if let Some((name, conf)) = name_fallback(lines) {
            out.fields.name = name;
            // Found without its label: always worth a look.
            out.confidence.insert("name", conf.min(UNSURE_BELOW / 2.0));
        }
    }
    out
}

/// Every label of the page, with where its value starts on its row.
fn anchors(rows: &[RowText]) -> Vec<Anchor> {
    let mut anchors = Vec::new();
    for (ri, row) in rows.iter().enumerate() {
        let hits = row.labels();
        for (k, &(start, end, &(label, field))) in hits.iter().enumerate() {
            let stop = hits.get(k + 1).map_or(row.chars.len(), |h| h.0);
            let b = row.boxes[row.owner[start]];
            anchors.push(Anchor {
                row: ri,
                field,
                label,
                left: row.x_of(start),
                height: b.bbox.height().max(1.0),
                value: end..stop,
            });
        }
    }
    anchors
}

/// Where a line of the address may have been missed: the stretch of its
/// column just below the address's last line, when the address could run
/// on (fewer lines than it can have) and no label follows at once. A short
/// continuation line (`306`, `号`) is easily lost when the whole page is
/// scaled down for detection; the caller looks at this stretch again at
/// full size and adds what it finds to the lines.
pub(crate) fn open_ends(lines: &[TextLine]) -> Vec<Region> {
    let rows: Vec<RowText> = rows(lines).into_iter().map(RowText::new).collect();
    let anchors = anchors(&rows);
    // A row without its label matters only when a field is missing.
    // (The code is found anywhere on the page, not beside its label.)
    let missing = read_page(lines, &rows, &anchors)
        .fields
        .entries()
        .iter()
        .any(|&(key, value)| key != "uscc" && value.is_empty());
    let mut out = if missing {
        unlabelled_rows(&rows, &anchors)
    } else {
        Vec::new()
    };
    out.extend(empty_values(&rows, &anchors));
    out.extend(address_end(&rows, &anchors));
    out
}

/// Where a value may have been missed: beside a field's label that has
/// nothing after it (a watermark across the value can hide it from the
/// detector), up to the next label or the column's edge.
fn empty_values(rows: &[RowText], anchors: &[Anchor]) -> Vec<Region> {
    let mut out = Vec::new();
    let mut seen: Vec<Field> = Vec::new();
    for (i, a) in anchors.iter().enumerate() {
        if a.field.key().is_none() || a.field == Field::Uscc || seen.contains(&a.field) {
            continue;
        }
        seen.push(a.field);
        let right = column_right(anchors, rows, i);
        if !value_of(rows, anchors, a, right).text.is_empty() || a.value.start == 0 {
            continue;
        }
        let row = &rows[a.row];
        let label = row.boxes[row.owner[a.value.start - 1]];
        let h = a.height;
        let next_label = anchors
            .iter()
            .filter(|o| o.row == a.row && o.left > a.left)
            .map(|o| o.left)
            .fold(f32::INFINITY, f32::min);
        out.push(Region {
            left: label.bbox.right() + 0.2 * h,
            top: label.bbox.top() - 0.3 * h,
            right: (label.bbox.right() + 16.0 * h)
                .min(right - 0.5 * h)
                .min(next_label - 0.3 * h),
            bottom: label.bbox.bottom() + 0.3 * h,
            line_height: h,
        });
    }
    out
}

/// Where a label may have been missed: a value that starts where the
/// column's values start, on the row right after a value that never
/// wraps (a person, an amount, a date), with no label beside it. Line
/// spacing cannot tell such a row from a continuation line, so without
/// its label the field is lost; the caller looks at the label's place
/// again.
fn unlabelled_rows(rows: &[RowText], anchors: &[Anchor]) -> Vec<Region> {
    let mut out = Vec::new();
    for (i, a) in anchors.iter().enumerate() {
        if !matches!(
            a.field,
            Field::Legal | Field::Capital | Field::Established | Field::Term
        ) {
            continue;
        }
        let right = column_right(anchors, rows, i);
        let value = value_of(rows, anchors, a, right);
        let Some(x) = value.value_x.filter(|_| !value.text.is_empty()) else {
            continue;
        };
        let h = a.height;
        let below = rows.iter().enumerate().skip(a.row + 1).find_map(|(rj, r)| {
            r.boxes
                .iter()
                .find(|b| {
                    (b.bbox.left() - x).abs() < 2.0 * h
                        && b.bbox.left() < right - h
                        && !is_speck(b)
                        && !is_slanted(b)
                })
                .map(|b| (rj, *b))
        });
        let Some((rj, b)) = below else { continue };
        if column_label_on(anchors, a, rj, right)
            || b.bbox.top() - value.last_bottom > 1.5 * h
            || b.bbox.left() - a.left < 2.0 * h
        {
            continue;
        }
        out.push(Region {
            left: a.left - h,
            top: b.bbox.top() - 0.3 * h,
            right: b.bbox.left() - 0.3 * h,
            bottom: b.bbox.bottom() + 0.3 * h,
            line_height: h,
        });
    }
    out
}

/// The stretch below the address's last line, when it could run on.
fn address_end(rows: &[RowText], anchors: &[Anchor]) -> Option<Region> {
    let (i, a, value) = anchors
        .iter()
        .enumerate()
        .filter(|(_, a)| a.field == Field::Address)
        .map(|(i, a)| {
            (
                i,
                a,
                value_of(rows, anchors, a, column_right(anchors, rows, i)),
            )
        })
        .find(|(_, _, v)| !v.text.is_empty())?;
    let (Some(x), true) = (value.value_x, value.continued < max_lines(a.field)) else {
        return None;
    };
    let h = a.height;
    let top = value.last_bottom;
    // The next label of the column bounds the stretch.
    let next_label = anchors
        .iter()
        .filter(|o| o.row > value.last_row && o.left >= a.left - 4.0 * h)
        .map(|o| {
            rows[o.row]
                .boxes
                .iter()
                .map(|b| b.bbox.top())
                .fold(f32::INFINITY, f32::min)
        })
        .fold(f32::INFINITY, f32::min);
    let bottom = (top + 2.0 * h).min(next_label);
    if bottom - top < 0.8 * h {
        return None;
    }
    let right = column_right(anchors, rows, i);
    Some(Region {
        left: x - h,
        top: top - 0.3 * h,
        right: if right.is_finite() {
            right - 0.5 * h
        } else {
            f32::INFINITY
        },
        bottom,
        line_height: h,
    })
}

/// A stretch of the page, in the image's pixels (`right` may be infinite:
/// to the page's edge).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Region {
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
    /// The height of the text expected in it.
    pub line_height: f32,
}

/// The right edge of anchor `i`'s column: the nearest label to its right
/// on the rows around it (the other column of a two-column page), or the
/// page's edge.
fn column_right(anchors: &[Anchor], rows: &[RowText], i: usize) -> f32 {
    let a = &anchors[i];
    let y = row_center(&rows[a.row]);
    anchors
        .iter()
        .filter(|o| o.field != Field::Foot)
        .filter(|o| o.left > a.left + 3.0 * a.height)
        .filter(|o| (row_center(&rows[o.row]) - y).abs() < 8.0 * a.height)
        .map(|o| o.left)
        .fold(f32::INFINITY, f32::min)
}

fn row_center(row: &RowText) -> f32 {
    let n = row.boxes.len().max(1) as f32;
    row.boxes.iter().map(|b| b.bbox.center().y).sum::<f32>() / n
}

/// A value as found on the page.
struct ValueRead {
    text: String,
    /// The lowest confidence of the boxes it came from.
    conf: f32,
    /// Where its lines start, when it has any.
    value_x: Option<f32>,
    /// The bottom of its last line, and that line's row.
    last_bottom: f32,
    last_row: usize,
    /// How many lines it continued over.
    continued: usize,
}

/// Anchor `a`'s value: the rest of its row up to the next label (within
/// the column), then the continuation lines below it in the same column.
/// Whether row `rj` has a label in `a`'s column (left of `right`): one
/// that ends `a`'s value. Its left edge may lie a little left of `a`'s,
/// when only a spread label's second character was found.
fn column_label_on(anchors: &[Anchor], a: &Anchor, rj: usize, right: f32) -> bool {
    let h = a.height;
    // A license prints each field's label once: the same label again
    // under a value is a seal's character read as its second half (所).
    let same_field = |o: &Anchor| o.field.key().is_some() && o.field == a.field;
    anchors
        .iter()
        .any(|o| o.row == rj && o.left >= a.left - 4.0 * h && o.left < right - h && !same_field(o))
}

/// Lettering this many times a value's height beside it is not part of
/// it: watermarks are printed much larger than a license's text.
const WATERMARK_TYPE: f32 = 1.5;

fn value_of(rows: &[RowText], anchors: &[Anchor], a: &Anchor, right: f32) -> ValueRead {
    let row = &rows[a.row];
    let mut text = String::new();
    let mut conf = f32::INFINITY;
    let mut last_bottom = f32::NEG_INFINITY;
    let mut last_box: Option<usize> = None;
    // The value's type size (its first box's height), to tell a
    // watermark's larger lettering beside or below it.
    let type_size = row
        .owner
        .get(a.value.start)
        .map_or(a.height, |&o| row.boxes[o].bbox.height().max(a.height));
    for i in a.value.clone() {
        if row.x_of(i) >= right - a.height {
            break;
        }
        let owner = row.owner[i];
        let b = row.boxes[owner];
        if is_speck(b) {
            continue;
        }
        if let Some(prev) = last_box.filter(|&p| p != owner) {
            // A value is printed in one run and one type size: a wide gap
            // after it, or much larger lettering (a watermark's 投标使用
            // beside a name), is something else (the QR code's caption, a
            // seal's text).
            if b.bbox.left() - row.boxes[prev].bbox.right() > 3.0 * a.height
                || b.bbox.height() > WATERMARK_TYPE * type_size
            {
                break;
            }
        }
        last_box = Some(owner);
        text.push(row.chars[i]);
        conf = conf.min(b.confidence);
        last_bottom = last_bottom.max(b.bbox.bottom());
    }
    let mut last_row = a.row;
    if !matches!(a.field, Field::Name | Field::Kind | Field::Address) && !text.is_empty() {
        // A person's name, a date and an amount are never wrapped.
        return ValueRead {
            text,
            conf,
            value_x: Some(row.x_of(a.value.start)),
            last_bottom,
            last_row,
            continued: 0,
        };
    }
    if text.is_empty() {
        // The value under its label (a narrow layout): it starts below.
        last_bottom = row
            .boxes
            .iter()
            .map(|b| b.bbox.bottom())
            .fold(f32::NEG_INFINITY, f32::max);
    }
    let h = a.height;
    // Where the value starts: beside its label, or (a value under or
    // after its label's row) where its first line below starts.
    let mut value_x = (!text.is_empty()).then(|| row.x_of(a.value.start));
    let gap_limit = 0.9 * h;
    let mut continued = 0;
    for (rj, next) in rows.iter().enumerate().skip(a.row + 1) {
        // A wrapped line starts where the value started (or, for a value
        // under its label, where the label did) and runs on unbroken:
        // text elsewhere in the column is a seal's or a watermark's.
        // The column's next label ends the value (its left edge may lie
        // a little left of this one's, when only a spread label's second
        // character was found).
        if column_label_on(anchors, a, rj, right) {
            break;
        }
        let mut in_column: Vec<&TextLine> = Vec::new();
        for b in next
            .boxes
            .iter()
            .copied()
            .filter(|b| !is_speck(b) && !is_slanted(b))
            .filter(|b| b.bbox.height() <= WATERMARK_TYPE * type_size)
        {
            if b.bbox.left() >= right - h {
                break;
            }
            match (in_column.last(), value_x) {
                (None, Some(x)) if (b.bbox.left() - x).abs() < 2.0 * h => in_column.push(b),
                (None, None) if b.bbox.left() >= a.left - h => in_column.push(b),
                (Some(prev), _) if b.bbox.left() - prev.bbox.right() < 3.0 * h => in_column.push(b),
                (Some(_), _) => break,
                (None, _) => {}
            }
        }
        if let Some(first) = in_column.first() {
            value_x.get_or_insert(first.bbox.left());
        }
        let top = in_column
            .iter()
            .map(|b| b.bbox.top())
            .fold(f32::INFINITY, f32::min);
        if in_column.is_empty() {
            if next
                .boxes
                .iter()
                .map(|b| b.bbox.top())
                .fold(f32::INFINITY, f32::min)
                - last_bottom
                > 2.0 * h
            {
                break;
            }
            continue;
        }
        if top - last_bottom > gap_limit {
            break;
        }
        if continued == max_lines(a.field) {
            break;
        }
        continued += 1;
        last_row = rj;
        for b in in_column {
            text.push_str(&squash(&b.text));
            conf = conf.min(b.confidence);
            last_bottom = last_bottom.max(b.bbox.bottom());
        }
    }
    ValueRead {
        text,
        conf: if conf.is_finite() { conf } else { 0.0 },
        value_x,
        last_bottom,
        last_row,
        continued,
    }
}

/// A character or two read with little confidence: a fragment of a seal,
/// a stamp or a fold, never part of a printed value.
fn is_speck(b: &TextLine) -> bool {
    let n = squash(&b.text).chars().count();
    (b.confidence < 0.5 && n <= 2) || (b.confidence < SPECK_CONFIDENCE && n == 1)
}

/// A character alone in its box read with less confidence than this is a
/// fragment too (a watermark's stroke read as 手 or 里): a printed
/// character standing alone is read with near certainty.
const SPECK_CONFIDENCE: f32 = 0.7;

/// A line at a slant to the page: a watermark's (仅供办理…使用), which
/// may cross a value's column but is never part of the value.
pub(crate) fn is_slanted(b: &TextLine) -> bool {
    slope_of(&b.bbox).is_some_and(|s| s.abs() > MAX_SLOPE)
}

/// The steepest slope (as a tangent) a line of the page's own text is
/// taken to have after the photo is turned upright: about 8°, beyond a
/// hand-held photo's skew and keystone.
const MAX_SLOPE: f32 = 0.14;

/// How many continuation lines a value can have on a license: a name or
/// a type wraps once at most, an address twice.
fn max_lines(field: Field) -> usize {
    match field {
        Field::Address => 2,
        _ => 1,
    }
}

/// A value as the form wants it: full-width brackets and punctuation as
/// printed on licenses, no stray colon; a person's name without the
/// characters of a neighbouring code; a date as `2015年03月12日`.
fn clean_value(field: Field, raw: &str) -> String {
    match field {
        Field::Established => first_date(raw),
        Field::Capital => {
            // The amount ends at 元 (万元, 元整, 万元人民币): what follows is
            // a neighbour's text.
            let t = normalize_text(raw);
            match t.rfind('元') {
                Some(i) => {
                    let mut end = i + '元'.len_utf8();
                    for tail in ["整", "人民币", "）"] {
                        if t[end..].starts_with(tail) {
                            end += tail.len();
                        }
                    }
                    t[..end].to_owned()
                }
                None => t,
            }
        }
        Field::Name => {
            // A name starts with a character of its own (CJK, a letter
            // or a digit), never with a mark a smudge left (_ · ,).
            let t = normalize_text(raw);
            let t = t.trim_start_matches(|c: char| !(is_cjk(c) || c.is_alphanumeric()));
            trim_after(t, NAME_ENDINGS, 4)
        }
        Field::Kind => {
            let t = trim_after(&normalize_text(raw), KIND_ENDINGS, 6);
            // No form is one character and then 有限责任公司 or
            // 股份有限公司 (其他有限责任公司 has two): a lone character
            // before them is a watermark's or a seal's.
            match t.char_indices().nth(1) {
                Some((i, _)) if KIND_STEMS.iter().any(|s| t[i..].starts_with(s)) => {
                    t[i..].to_owned()
                }
                _ => t,
            }
        }
        Field::Legal => {
            let t = normalize_text(raw);
            if t.chars().any(is_cjk) {
                t.chars().filter(|c| is_cjk(*c) || *c == '·').collect()
            } else {
                t
            }
        }
        _ => normalize_text(raw),
    }
}

/// When the 名称 label was misread: the first line that ends like an
/// enterprise name and carries no other label, minus a stray label
/// character, with its confidence.
fn name_fallback(lines: &[TextLine]) -> Option<(String, f32)> {
    const ENDINGS: &[&str] = &[
        "公司",
        "合作社",
        "厂",
        "店",
        "中心",
        "事务所",
        "商行",
        "经营部",
    ];
    lines
        .iter()
        .map(|l| (squash(&l.text), l.confidence))
        .filter(|(t, _)| ENDINGS.iter().any(|e| t.ends_with(e)))
        .filter(|(t, _)| !LABELS.iter().any(|(label, _)| t.contains(label)))
        .map(|(t, c)| {
            (
                normalize_text(t.trim_start_matches(['名', '称', ':', '：'])),
                c,
            )
        })
        .find(|(t, _)| t.chars().count() >= 4)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::{Point, Quad};

    #[test]
    fn uscc_check_characters() {
        for (code, ok) in [
            ("91350100M000100Y43", true),
            ("91110000600037341L", true),
            ("911100001000111111", false),
            ("91350100M000100Y4", false),
            ("91350100M000100Y4I", false),
            ("91350100M000100Y44", false),
        ] {
            assert_eq!(uscc_is_valid(code), ok, "{code}");
        }
    }

    fn line(text: &str, x: f32, y: f32, w: f32) -> TextLine {
        let q = Quad([
            Point::new(x, y),
            Point::new(x + w, y),
            Point::new(x + w, y + 30.0),
            Point::new(x, y + 30.0),
        ]);
        TextLine {
            text: text.into(),
            confidence: 0.9,
            bbox: q,
        }
    }

    /// The 2016 template: 类型 wraps in the left column beside the right
    /// column's rows, 住所 wraps in the right column beside the 经营范围
    /// lines, and a seal's text sits between columns.
    #[test]
    fn wrapped_values_are_joined_within_their_column() {
        let lines = vec![
            line("统一社会信用代码", 100.0, 100.0, 240.0),
            line("91350100M000100Y43", 100.0, 140.0, 300.0),
            line("营业执照", 500.0, 200.0, 300.0),
            line("名", 100.0, 300.0, 30.0),
            line("称", 200.0, 300.0, 30.0),
            line("枣庄恒信科技有限公司", 280.0, 300.0, 300.0),
            line("注册资本", 900.0, 300.0, 120.0),
            line("壹仟万元整", 1080.0, 300.0, 150.0),
            line("类", 100.0, 360.0, 30.0),
            line("型", 200.0, 360.0, 30.0),
            line("有限责任公司（非自然人投资", 280.0, 360.0, 390.0),
            line("成立日期", 900.0, 360.0, 120.0),
            line("2015年03月12日", 1080.0, 360.0, 200.0),
            line("或控股的法人独资）", 280.0, 395.0, 270.0),
            line("营业期限", 900.0, 420.0, 120.0),
            line("2015年03月12日至长期", 1080.0, 420.0, 300.0),
            line("法定代表人", 100.0, 440.0, 150.0),
            line("王伟", 280.0, 440.0, 60.0),
            line("经营范围", 100.0, 500.0, 120.0),
            line("软件开发；信息技术咨询服务；", 280.0, 500.0, 400.0),
            line("住", 900.0, 500.0, 30.0),
            line("所", 1000.0, 500.0, 30.0),
            line("山东省枣庄市市中区光明路", 1080.0, 500.0, 350.0),
            line("数据处理和存储支持服务；", 280.0, 535.0, 360.0),
            line("有限公司", 720.0, 537.0, 120.0),
            line("12号科技大厦8层801室", 1080.0, 535.0, 300.0),
            line("计算机系统服务。", 280.0, 570.0, 240.0),
            line("登记机关", 1000.0, 800.0, 120.0),
            line("2020年01月02日", 1000.0, 850.0, 200.0),
        ];
        let read = read_license(&lines);
        let f = &read.fields;
        assert_eq!(f.kind, "有限责任公司（非自然人投资或控股的法人独资）");
        assert_eq!(f.address, "山东省枣庄市市中区光明路12号科技大厦8层801室");
        assert_eq!(f.legal_representative, "王伟");
        assert_eq!(f.name, "枣庄恒信科技有限公司");
        assert_eq!(f.established, "2015年03月12日");
        assert_eq!(f.registered_capital, "壹仟万元整");
        assert!(read.marks >= 8, "{}", read.marks);
        assert_eq!(read.unsure(), Vec::<&str>::new());
    }

    /// A spread label of which only the first character was detected (类,
    /// its 型 lost), or whose second character shares a box with a stray
    /// mark (与型), still ends the value above it and starts its own.
    #[test]
    fn a_spread_label_with_only_its_first_character_found() {
        for kind_label in [
            vec![line("类", 100.0, 360.0, 30.0)],
            vec![
                line("类", 100.0, 360.0, 30.0),
                line("与型", 180.0, 360.0, 60.0),
            ],
        ] {
            let mut lines = vec![
                line("统一社会信用代码", 100.0, 100.0, 240.0),
                line("91350100M000100Y43", 100.0, 140.0, 300.0),
                line("名", 100.0, 300.0, 30.0),
                line("称", 200.0, 300.0, 30.0),
                line(
                    "石家庄市凌青人力资源有限公司长安分公司",
                    280.0,
                    300.0,
                    500.0,
                ),
                line("其他有限责任公司分公司", 280.0, 360.0, 300.0),
                line("负责人", 100.0, 420.0, 90.0),
                line("曾琴桂", 280.0, 420.0, 90.0),
            ];
            lines.extend(kind_label);
            let f = read_license(&lines).fields;
            assert_eq!(f.name, "石家庄市凌青人力资源有限公司长安分公司");
            assert_eq!(f.kind, "其他有限责任公司分公司");
            assert_eq!(f.legal_representative, "曾琴桂");
        }
    }

    /// A watermark's lettering, twice the type's height, right after a
    /// person's name on its row is not part of the name.
    #[test]
    fn a_watermark_beside_a_value_is_not_part_of_it() {
        let tall = |text: &str, x: f32, y: f32, w: f32| {
            let mut l = line(text, x, y, w);
            l.bbox = Quad([
                Point::new(x, y),
                Point::new(x + w, y),
                Point::new(x + w, y + 64.0),
                Point::new(x, y + 64.0),
            ]);
            l
        };
        let lines = vec![
            line("统一社会信用代码", 100.0, 100.0, 240.0),
            line("91350100M000100Y43", 100.0, 140.0, 300.0),
            line("名称", 100.0, 300.0, 60.0),
            line("石家庄市凌青人力资源有限公司", 280.0, 300.0, 420.0),
            line("法定代表人", 100.0, 420.0, 150.0),
            line("朱涛飞", 280.0, 420.0, 90.0),
            tall("标使用", 400.0, 403.0, 190.0),
        ];
        let f = read_license(&lines).fields;
        assert_eq!(f.legal_representative, "朱涛飞");
        // The same lettering in the value's own size is read on.
        let mut same_size = lines.clone();
        same_size[6] = line("标使用", 400.0, 420.0, 90.0);
        let f = read_license(&same_size).fields;
        assert_eq!(f.legal_representative, "朱涛飞标使用");
    }

    /// A seal's character under a label, read as the label's second half
    /// (所 under 住所), does not end the value: a license prints each
    /// label once.
    #[test]
    fn a_label_read_again_under_its_value_does_not_end_it() {
        let lines = vec![
            line("统一社会信用代码", 100.0, 100.0, 240.0),
            line("91350100M000100Y43", 100.0, 140.0, 300.0),
            line("名称", 100.0, 300.0, 60.0),
            line("石家庄市凌青人力资源有限公司", 280.0, 300.0, 420.0),
            line("住", 800.0, 300.0, 30.0),
            line("所", 880.0, 300.0, 30.0),
            line("河北省石家庄市长安区和平东路", 1000.0, 300.0, 420.0),
            line("所", 805.0, 345.0, 30.0),
            line("1389号大学科技园401-2室", 1000.0, 345.0, 360.0),
        ];
        let f = read_license(&lines).fields;
        assert_eq!(
            f.address,
            "河北省石家庄市长安区和平东路1389号大学科技园401-2室"
        );
    }

    /// Watermark lettering that lands in a value: a stray character
    /// between a label found by its first character and the value, a
    /// slanted line between a label and its value on their row, taller
    /// lettering under a value's last line, a faint stroke read as one
    /// character, and a check mark read before a value.
    #[test]
    fn watermark_strokes_in_and_around_values_are_not_read() {
        let sized = |text: &str, x: f32, y: f32, w: f32, h: f32, conf: f32| TextLine {
            text: text.into(),
            confidence: conf,
            bbox: Quad([
                Point::new(x, y),
                Point::new(x + w, y),
                Point::new(x + w, y + h),
                Point::new(x, y + h),
            ]),
        };
        let slanted = |text: &str, x: f32, y: f32, w: f32| TextLine {
            text: text.into(),
            confidence: 0.9,
            // Rising about 0.3 across its width: a watermark's angle.
            bbox: Quad([
                Point::new(x, y),
                Point::new(x + w, y - 0.3 * w),
                Point::new(x + w, y - 0.3 * w + 40.0),
                Point::new(x, y + 40.0),
            ]),
        };
        let lines = vec![
            line("统一社会信用代码", 100.0, 100.0, 240.0),
            line("91350100M000100Y43", 100.0, 140.0, 300.0),
            line("名称", 100.0, 300.0, 60.0),
            line("石家庄市凌青人力资源有限公司", 280.0, 300.0, 420.0),
            line("类", 100.0, 360.0, 30.0),
            line("☑型☑有限责任公司", 160.0, 360.0, 270.0),
            // 法定代表人 and its value, a watermark's line rising from the
            // value (whose row, along the watermark's slope, the value
            // would join) and a label a little lower than its value.
            line("法定代表人", 100.0, 470.0, 150.0),
            line("贾福浩", 400.0, 460.0, 90.0),
            slanted("供投标", 500.0, 444.5, 150.0),
            // 住 found without 所, a watermark's character after it.
            line("住", 800.0, 300.0, 30.0),
            line("公", 845.0, 305.0, 30.0),
            line("石家庄市长安区中山东路2号", 900.0, 300.0, 390.0),
            // A stroke read as one unsure character between two lines.
            sized("手", 1300.0, 300.0, 30.0, 30.0, 0.6),
            line("大厦2楼708", 900.0, 345.0, 210.0),
            // The watermark's larger lettering under the last line.
            sized("此复", 910.0, 385.0, 100.0, 50.0, 1.0),
        ];
        let f = read_license(&lines).fields;
        assert_eq!(f.kind, "有限责任公司");
        assert_eq!(f.legal_representative, "贾福浩");
        assert_eq!(f.address, "石家庄市长安区中山东路2号大厦2楼708");
        // The same character read surely, in the line's size, is read.
        let mut sure = lines.clone();
        sure[12] = sized("手", 1300.0, 300.0, 30.0, 30.0, 0.95);
        sure[14] = sized("此复", 910.0, 385.0, 60.0, 30.0, 1.0);
        let f = read_license(&sure).fields;
        assert_eq!(f.address, "石家庄市长安区中山东路2号手大厦2楼708此复");
    }

    /// A watermark's slanted line crossing the address's column is not a
    /// line of the address; and where the address could run on, the
    /// stretch below its last line is offered for a second look, bounded
    /// by the next label.
    #[test]
    fn slanted_lines_are_not_continuations_and_open_ends_are_offered() {
        let slanted = |text: &str, x: f32, y: f32, w: f32| {
            let mut l = line(text, x, y, w);
            let rise = 0.35 * w;
            l.bbox = Quad([
                Point::new(x, y + rise),
                Point::new(x + w, y),
                Point::new(x + w, y + 30.0),
                Point::new(x, y + rise + 30.0),
            ]);
            l
        };
        let lines = vec![
            line("统一社会信用代码", 100.0, 100.0, 240.0),
            line("91350100M000100Y43", 100.0, 140.0, 300.0),
            line("住所", 100.0, 300.0, 60.0),
            line("苏州市张家港市金港街道港城大道3699", 280.0, 300.0, 500.0),
            line("号金蝶软件园B座二楼201号", 280.0, 335.0, 350.0),
            slanted("数字证书办理使用", 280.0, 355.0, 240.0),
            line("注册资本", 100.0, 520.0, 120.0),
            line("壹仟万元整", 280.0, 520.0, 150.0),
        ];
        let f = read_license(&lines).fields;
        assert_eq!(
            f.address,
            "苏州市张家港市金港街道港城大道3699号金蝶软件园B座二楼201号"
        );
        let ends = open_ends(&lines);
        assert_eq!(ends.len(), 1, "{ends:?}");
        let r = ends[0];
        assert!((r.left - 250.0).abs() < 1.0, "{r:?}");
        assert!((r.top - 356.0).abs() < 1.0, "{r:?}");
        assert!((r.bottom - 425.0).abs() < 1.0, "{r:?}");
        assert!(r.right.is_infinite());
        // The next label right below the last line: nothing to look at.
        let mut closed = lines.clone();
        closed.retain(|l| !l.text.starts_with("注册资本") && l.text != "壹仟万元整");
        closed.push(line("注册资本", 100.0, 375.0, 120.0));
        closed.push(line("壹仟万元整", 280.0, 375.0, 150.0));
        assert!(open_ends(&closed).is_empty(), "{:?}", open_ends(&closed));
        // A label with nothing beside it: its value's place is offered.
        closed.pop();
        let ends = open_ends(&closed);
        assert_eq!(ends.len(), 1, "{ends:?}");
        assert!(ends[0].left > 220.0 && ends[0].left < 240.0, "{ends:?}");
        assert!((ends[0].top - 366.0).abs() < 1.0, "{ends:?}");
    }

    /// A row whose label was lost, right after a value that never wraps
    /// (a term): its label's place is offered for a second look, and a
    /// row after a name (which may wrap) is not.
    #[test]
    fn a_row_without_its_label_after_a_term_is_offered() {
        let lines = vec![
            line("统一社会信用代码", 100.0, 100.0, 240.0),
            line("营业期限", 100.0, 300.0, 120.0),
            line("2003年02月22日至2023年02月21日", 280.0, 300.0, 400.0),
            line("河南省郑州市金水区花园路1983号8", 280.0, 345.0, 420.0),
            line("层801室", 280.0, 390.0, 90.0),
        ];
        let ends = open_ends(&lines);
        assert_eq!(ends.len(), 1, "{ends:?}");
        let r = ends[0];
        assert_eq!((r.left, r.right), (70.0, 271.0), "{r:?}");
        assert_eq!((r.top, r.bottom), (336.0, 384.0), "{r:?}");
        let mut named = lines.clone();
        named[1] = line("名称", 100.0, 300.0, 60.0);
        named[2] = line("郑州市汇智信息技术有限公司", 280.0, 300.0, 400.0);
        assert!(
            open_ends(&named).iter().all(|r| r.top > 380.0),
            "{:?}",
            open_ends(&named)
        );
    }

    /// 个体工商户: 经营者, 经营场所, 注册日期; no capital printed, none
    /// asked for. A spread label with a watermark character between its
    /// two characters is still a label.
    #[test]
    fn individual_business_labels() {
        let lines = vec![
            line("营业执照", 300.0, 50.0, 300.0),
            line("92370402MA3C8XFH2B", 100.0, 120.0, 300.0),
            line("名", 100.0, 200.0, 30.0),
            line("仅", 150.0, 202.0, 30.0),
            line("称", 200.0, 200.0, 30.0),
            line("枣庄市市中区老王家常菜馆", 280.0, 200.0, 330.0),
            line("类", 100.0, 260.0, 30.0),
            line("型", 200.0, 260.0, 30.0),
            line("个体工商户", 280.0, 260.0, 150.0),
            line("经营者", 100.0, 320.0, 90.0),
            line("王伟致", 280.0, 320.0, 90.0),
            line("组成形式", 100.0, 380.0, 120.0),
            line("个人经营", 280.0, 380.0, 120.0),
            line("经营场所", 100.0, 440.0, 120.0),
            line("山东省枣庄市市中区光明路12号", 280.0, 440.0, 400.0),
            line("注册日期", 100.0, 500.0, 120.0),
            line("12015年3月2日", 280.0, 500.0, 200.0),
        ];
        let read = read_license(&lines);
        assert!(read.individual);
        assert_eq!(read.fields.name, "枣庄市市中区老王家常菜馆");
        assert_eq!(read.fields.kind, "个体工商户");
        assert_eq!(read.fields.address, "山东省枣庄市市中区光明路12号");
        assert_eq!(read.fields.established, "2015年03月02日");
        assert_eq!(read.fields.registered_capital, "");
        assert!(!read.unsure().contains(&"registered_capital"));
    }

    #[test]
    fn amounts_end_at_yuan_and_names_at_their_form() {
        assert_eq!(
            clean_value(Field::Capital, "伍佰万元整备案、许可"),
            "伍佰万元整"
        );
        assert_eq!(
            clean_value(Field::Capital, "人民币100万元"),
            "人民币100万元"
        );
        assert_eq!(
            clean_value(Field::Name, "天津市北斗教育科技有限公司件原型"),
            "天津市北斗教育科技有限公司"
        );
        assert_eq!(
            clean_value(Field::Name, "东莞市昌宏文化传媒有限公司第一分公司"),
            "东莞市昌宏文化传媒有限公司第一分公司"
        );
        assert_eq!(
            clean_value(Field::Kind, "股份有限公司(非上市丶国有控股)"),
            "股份有限公司（非上市、国有控股）"
        );
        assert_eq!(
            clean_value(Field::Legal, "周国军91440305MA37HM7D4B"),
            "周国军"
        );
        assert_eq!(
            clean_value(Field::Kind, "个体工商户主营者高永"),
            "个体工商户"
        );
        assert_eq!(
            clean_value(Field::Kind, "有限责任公司(自然人投资或控股)贾福浩"),
            "有限责任公司（自然人投资或控股）"
        );
        assert_eq!(
            clean_value(Field::Kind, "有限责任公司（自然人投资或控股）（广州）"),
            "有限责任公司（自然人投资或控股）（广州）",
            "a bracket is never dropped"
        );
        assert_eq!(
            clean_value(Field::Kind, "使有限责任公司(自然人独资)"),
            "有限责任公司（自然人独资）",
            "a watermark's character before the form"
        );
        assert_eq!(
            clean_value(Field::Kind, "其他有限责任公司分公司"),
            "其他有限责任公司分公司"
        );
        assert_eq!(
            clean_value(Field::Name, "_昆明市五华区荣诚医疗器械服务部"),
            "昆明市五华区荣诚医疗器械服务部"
        );
    }

    #[test]
    fn two_column_layout_with_split_labels() {
        let lines = vec![
            line("统一社会信用代码", 100.0, 100.0, 240.0),
            line("91350100M0OO100Y43", 100.0, 140.0, 300.0),
            line("名", 100.0, 400.0, 30.0),
            line("称", 220.0, 401.0, 30.0),
            line("枣庄恒信科技有限公司", 290.0, 400.0, 300.0),
            line("注册资本 壹仟万元整", 900.0, 402.0, 300.0),
            line("类型有限责任公司(自然人独资)", 100.0, 470.0, 400.0),
            line("成立日期", 900.0, 470.0, 150.0),
            line("2015年03月12日", 1080.0, 471.0, 200.0),
            line("法定代表人：王伟", 100.0, 540.0, 300.0),
            line("住所", 900.0, 610.0, 150.0),
            line("山东省枣庄市市中区光明路12号", 1080.0, 610.0, 400.0),
        ];
        let f = read_business_license(&lines);
        assert_eq!(f.uscc, "91350100M000100Y43");
        assert_eq!(f.name, "枣庄恒信科技有限公司");
        assert_eq!(f.registered_capital, "壹仟万元整");
        assert_eq!(f.kind, "有限责任公司（自然人独资）");
        assert_eq!(f.established, "2015年03月12日");
        assert_eq!(f.legal_representative, "王伟");
        assert_eq!(f.address, "山东省枣庄市市中区光明路12号");
    }
}
