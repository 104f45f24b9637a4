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
    /// Labels that end a value but are not read (经营范围, 营业期限, …).
    Other,
}

/// Labels, longest first within a field so `主要经营场所` wins over `经营场所`.
const LABELS: &[(&str, Field)] = &[
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
    ("住所", Field::Address),
    ("注册资本", Field::Capital),
    ("出资额", Field::Capital),
    ("成立日期", Field::Established),
    ("注册日期", Field::Established),
    ("营业期限", Field::Other),
    ("合伙期限", Field::Other),
    ("经营范围", Field::Other),
    ("登记机关", Field::Other),
    ("组成形式", Field::Other),
];

/// Boxes grouped into rows, each row's boxes left to right.
fn rows(lines: &[TextLine]) -> Vec<Vec<&TextLine>> {
    let mut sorted: Vec<&TextLine> = lines.iter().collect();
    sorted.sort_by(|a, b| a.bbox.center().y.total_cmp(&b.bbox.center().y));
    let mut rows: Vec<Vec<&TextLine>> = Vec::new();
    for l in sorted {
        let c = l.bbox.center();
        let h = l.bbox.height().max(1.0);
        // Same row when the centre lies within half a line height of the
        // row's, measured along the row's slope (the page may be rotated).
        let fits = rows.last().is_some_and(|row| {
            row.iter().any(|o| {
                let oc = o.bbox.center();
                let [tl, tr, _, _] = o.bbox.0;
                let slope = if (tr.x - tl.x).abs() > 1.0 {
                    (tr.y - tl.y) / (tr.x - tl.x)
                } else {
                    0.0
                };
                let expected = oc.y + slope * (c.x - oc.x);
                (c.y - expected).abs() < 0.5 * h.min(o.bbox.height().max(1.0))
            })
        });
        match rows.last_mut() {
            Some(row) if fits => row.push(l),
            _ => rows.push(vec![l]),
        }
    }
    for row in &mut rows {
        row.sort_by(|a, b| a.bbox.left().total_cmp(&b.bbox.right().min(b.bbox.left())));
    }
    rows
}

/// Text without spaces and with the colons that sometimes follow labels.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '　')
        .collect()
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
/// character is right; failing that, the first such run.
fn find_uscc(lines: &[TextLine]) -> String {
    let mut fallback = None;
    for l in lines {
        let t: Vec<char> = squash(&l.text)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '|')
            .collect();
        for i in 0..t.len().saturating_sub(17) {
            let token: String = t[i..i + 18].iter().collect();
            if let Some(code) = uscc_candidate(&token) {
                return code;
            }
            if fallback.is_none() && token.chars().filter(char::is_ascii_digit).count() >= 8 {
                fallback = Some(token.to_ascii_uppercase());
            }
        }
    }
    fallback
        .map(|t| repair_uscc(&t).unwrap_or(t))
        .unwrap_or_default()
}

/// One misread character (0/Q/D, 8/B, 5/S, 2/Z, 1/7, U/V, …): if exactly one
/// single substitution makes the check character right, take it.
fn repair_uscc(token: &str) -> Option<String> {
    const CONFUSED: &[(char, &[char])] = &[
        ('0', &['Q', 'D']),
        ('Q', &['0', 'D']),
        ('D', &['0', 'Q']),
        ('8', &['B']),
        ('B', &['8']),
        ('1', &['7', 'T']),
        ('7', &['1', 'T']),
        ('T', &['7', '1']),
        ('6', &['G']),
        ('G', &['6']),
        ('U', &['W']),
        ('W', &['U']),
    ];
    let chars: Vec<char> = token.chars().collect();
    let mut found = None;
    for (i, c) in chars.iter().enumerate() {
        for &(from, tos) in CONFUSED {
            if *c != from {
                continue;
            }
            for &to in tos {
                let mut v = chars.clone();
                v[i] = to;
                let code: String = v.into_iter().collect();
                if uscc_is_valid(&code) {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(code);
                }
            }
        }
    }
    found
}

/// Reads the license fields from OCR lines (as [`crate::Ocr::read_lines`]
/// returns them). Fields not found stay empty; nothing is validated beyond
/// preferring a USCC whose check character is right.
pub fn read_business_license(lines: &[TextLine]) -> LicenseFields {
    let mut out = LicenseFields {
        uscc: find_uscc(lines),
        ..LicenseFields::default()
    };
    let rows = rows(lines);
    for (ri, row) in rows.iter().enumerate() {
        let text = squash(&row.iter().map(|l| l.text.as_str()).collect::<String>());
        // Every label occurrence in this row, left to right, without overlaps.
        let mut hits: Vec<(usize, usize, Field)> = Vec::new();
        for &(label, field) in LABELS {
            for (pos, _) in text.match_indices(label) {
                let end = pos + label.len();
                if !hits.iter().any(|&(s, e, _)| pos < e && s < end) {
                    hits.push((pos, end, field));
                }
            }
        }
        hits.sort_by_key(|h| h.0);
        for (k, &(_, end, field)) in hits.iter().enumerate() {
            let stop = hits.get(k + 1).map_or(text.len(), |h| h.0);
            let mut value = text.get(end..stop).unwrap_or_default().to_owned();
            if value.trim_matches([':', '：']).is_empty() && k + 1 == hits.len() {
                // Value on the next row (a narrow layout, or the USCC).
                if let Some(next) = rows.get(ri + 1) {
                    value = squash(&next.iter().map(|l| l.text.as_str()).collect::<String>());
                }
            }
            let slot = match field {
                Field::Name => &mut out.name,
                Field::Kind => &mut out.kind,
                Field::Legal => &mut out.legal_representative,
                Field::Address => &mut out.address,
                Field::Capital => &mut out.registered_capital,
                Field::Established => &mut out.established,
                Field::Uscc | Field::Other => continue,
            };
            if slot.is_empty() {
                *slot = if field == Field::Established {
                    normalize_date(&value)
                } else {
                    normalize_text(&value)
                };
            }
        }
    }
    if out.name.is_empty() {
        out.name = name_fallback(lines);
    }
    out
}

/// When the 名称 label was misread: the first line that ends like an
/// enterprise name and carries no other label, minus a stray label character.
fn name_fallback(lines: &[TextLine]) -> String {
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
        .map(|l| squash(&l.text))
        .filter(|t| ENDINGS.iter().any(|e| t.ends_with(e)))
        .filter(|t| !LABELS.iter().any(|(label, _)| t.contains(label)))
        .map(|t| normalize_text(t.trim_start_matches(['名', '称', ':', '：'])))
        .find(|t| t.chars().count() >= 4)
        .unwrap_or_default()
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
