#!/usr/bin/env python3
"""Independent evaluation corpus for the business-license (营业执照) OCR.

Renders photos/scans of the 2016+ national template (横版正本, 横版副本,
竖版副本, 个体工商户, 农民专业合作社) plus a few images that are not licenses,
and writes the ground truth next to them.

    python3 scripts/license-corpus/generate.py --split dev|heldout|... --count N --out DIR

writes DIR/<split>/NNNN.jpg (a few .png) and DIR/<split>/truth.jsonl.
Deterministic: the split picks a fixed seed (SPLIT_SEEDS) and each image has
its own seed derived from it, so reruns give identical files and the splits
never share an image.  `dev` and `dev2` are tuning halves; `heldout` is the
held-out half of issue 13; `heldout2` is a second held-out half, added when
`heldout` had been measured a dozen times, and measured only once per
landed change.  Only Pillow and numpy are used.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vocab as V  # noqa: E402

# `fixtures`: the few images committed for the OCR crate's tests (neither half);
# `dev2`: a second tuning half (never the held-out one).
SPLIT_SEEDS = {"dev": 1001, "heldout": 2002, "fixtures": 3003, "dev2": 4004, "heldout2": 5005}

# ---------------------------------------------------------------- USCC (GB 32100)
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]  # GB 11714 organization code


def uscc_check(first17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_valid(code: str) -> bool:
    return (len(code) == 18 and all(c in USCC_ALPHABET for c in code)
            and uscc_check(code[:17]) == code[17])


def org_code(rng: random.Random) -> str:
    """9-char organization code; letters valued A=10..Z=35 (GB 11714)."""
    if rng.random() < 0.55:  # post-2015 registrations: MA + 6 characters
        alnum = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        body = "MA" + "".join(rng.choice(alnum) for _ in range(6))
    else:
        body = "".join(rng.choice("0123456789") for _ in range(8))
        if body[0] == "0":
            body = str(rng.randint(1, 9)) + body[1:]
    val = lambda c: int(c) if c.isdigit() else ord(c) - 55  # noqa: E731
    c9 = 11 - sum(val(c) * w for c, w in zip(body, ORG_WEIGHTS)) % 11
    return body + ("X" if c9 == 10 else "0" if c9 == 11 else str(c9))


def make_uscc(rng: random.Random, entity: str, division: str) -> str:
    second = {"company": "1", "individual": "2", "coop": "3"}[entity]
    first17 = "9" + second + division + org_code(rng)
    code = first17 + uscc_check(first17)
    assert uscc_valid(code), code
    return code


# Known-good vectors (computed by hand from the standard's algorithm).
assert uscc_check("91350100M000100Y4") == "3"
assert uscc_valid("91350100M000100Y43")

# ---------------------------------------------------------------- fonts
FONT_SPECS = {
    # key: (family, style substring, fallback path)
    "serif": ("Noto Serif CJK SC", "Regular", "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"),
    "serif_bold": ("Noto Serif CJK SC", "Bold", "/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc"),
    "sans": ("Noto Sans CJK SC", "Regular", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    "sans_bold": ("Noto Sans CJK SC", "Bold", "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
    "uming": ("AR PL UMing CN", "", "/usr/share/fonts/truetype/arphic/uming.ttc"),
    "ukai": ("AR PL UKai CN", "", "/usr/share/fonts/truetype/arphic/ukai.ttc"),
    "zenhei": ("WenQuanYi Zen Hei", "", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    "microhei": ("WenQuanYi Micro Hei", "", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
}
# value fonts (recorded in truth) with weights: real licenses print values in song/fangsong
VALUE_FONTS = [("serif", 30), ("uming", 22), ("ukai", 14), ("sans", 12), ("zenhei", 10), ("microhei", 12)]
# label fonts: a bold hei/song
LABEL_FONTS = [("sans_bold", 40), ("zenhei", 20), ("serif_bold", 20), ("microhei", 10), ("sans", 10)]


@lru_cache(maxsize=None)
def font_files() -> dict:
    """key -> (path, index) of the SC face, found with fc-list (fallback: Debian paths)."""
    listing = []
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file", "family", "style"], capture_output=True,
                             text=True, check=True).stdout
        listing = out.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pass
    found = {}
    for key, (family, style, fallback) in FONT_SPECS.items():
        path = None
        for line in listing:
            f, _, rest = line.partition(": ")
            fams = rest.split(":style=")[0].split(",")
            st = rest.split(":style=")[1] if ":style=" in rest else ""
            if family in fams and (not style or style in st):
                path = f
                break
        path = path or fallback
        if not os.path.exists(path):
            raise SystemExit(f"missing font {family} {style} ({path}); install: apt-get install -y "
                             "fonts-noto-cjk fonts-arphic-uming fonts-arphic-ukai fonts-wqy-zenhei fonts-wqy-microhei")
        index = None
        for i in range(16):
            try:
                name = ImageFont.truetype(path, 12, index=i).getname()
            except OSError:
                break
            if name[0] == family and (not style or style in name[1]):
                index = i
                break
        if index is None:
            raise SystemExit(f"no face {family} {style} in {path}")
        found[key] = (path, index)
    return found


@lru_cache(maxsize=512)
def font(key: str, size: int) -> ImageFont.FreeTypeFont:
    path, index = font_files()[key]
    return ImageFont.truetype(path, max(6, int(size)), index=index)


def family_of(key: str) -> str:
    return FONT_SPECS[key][0]


def pick_weighted(rng, items):
    total = sum(w for _, w in items)
    r = rng.uniform(0, total)
    for item, w in items:
        r -= w
        if r <= 0:
            return item
    return items[-1][0]


# ---------------------------------------------------------------- capital in 大写
DIGITS_CAP = "零壹贰叁肆伍陆柒捌玖"


def cap4(n: int) -> str:
    """0 < n < 10000 in financial capitals: 1050 -> 壹仟零伍拾."""
    units = ["仟", "佰", "拾", ""]
    s = f"{n:04d}"
    out, zero = "", False
    started = False
    for d, u in zip(s, units):
        d = int(d)
        if d == 0:
            if started:
                zero = True
            continue
        if zero:
            out += "零"
            zero = False
        out += DIGITS_CAP[d] + u
        started = True
    return out


def capital_text(rng, wan: int) -> str:
    """Registered capital of `wan` 万元 printed in one of the usual styles."""
    style = rng.random()
    if style < 0.62:
        yi, rest = divmod(wan, 10000)
        s = ""
        if yi:
            s += cap4(yi) + "亿"
            if rest:
                s += ("零" if rest < 1000 else "") + cap4(rest) + "万"
        else:
            s += cap4(rest) + "万"
        s += "元整"
        if rng.random() < 0.3:
            s = "人民币" + s
        return s
    if style < 0.82:
        return f"{wan}万元"
    if style < 0.92:
        return f"人民币{wan}万元"
    if style < 0.97:
        return f"{wan}.000000万人民币"
    return cap4(min(wan, 9999)) + "万港元"


# ---------------------------------------------------------------- dates
def rand_date(rng, y0, y1):
    y = rng.randint(y0, y1)
    m = rng.randint(1, 12)
    d = rng.randint(1, [31, 29 if y % 4 == 0 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1])
    return (y, m, d)


def cn_date(d):
    return f"{d[0]}年{d[1]:02d}月{d[2]:02d}日"


def iso_date(d):
    return f"{d[0]:04d}-{d[1]:02d}-{d[2]:02d}"


def later_date(rng, d, max_years):
    y = min(2024, d[0] + rng.randint(0, max_years))
    for _ in range(50):
        nd = rand_date(rng, y, y)
        if nd >= d:
            return nd
    return d


# ---------------------------------------------------------------- entity data
def person_name(rng):
    if rng.random() < 0.06:
        return rng.choice(V.COMPOUND_SURNAMES) + "".join(rng.choice(V.GIVEN) for _ in range(rng.randint(1, 2)))
    return rng.choice(V.SURNAMES) + "".join(rng.choice(V.GIVEN) for _ in range(1 if rng.random() < 0.35 else 2))


def zihao(rng):
    r = rng.random()
    if r < 0.45:
        return rng.choice(V.ZIHAO_WORDS)
    a, b = rng.sample(V.ZIHAO_CHARS, 2)
    if r < 0.9:
        return a + b
    return a + b + rng.choice(V.ZIHAO_CHARS)


def address(rng, place, long=True):
    prov, city, dist, _code, _short, streets, roads = place
    parts = []
    if prov and rng.random() < 0.55:
        parts.append(prov)
    parts.append(city + dist)
    if rng.random() < 0.6:
        parts.append(rng.choice(streets))
    if city == "深圳市" and rng.random() < 0.12:
        return "深圳市前海深港合作区前湾一路1号A栋201室（入驻深圳市前海商务秘书有限公司）"
    road = rng.choice(roads)
    parts.append(f"{road}{rng.randint(1, 3999)}号")
    if long or rng.random() < 0.5:
        if rng.random() < 0.8:
            parts.append(rng.choice(V.BUILDINGS))
        parts.append(rng.choice(V.ROOMS))
    return "".join(parts)


def scope_text(rng, kind, n_items, shop=None):
    if kind == "coop":
        items = rng.sample(V.COOP_SCOPE, min(n_items, len(V.COOP_SCOPE)))
        return "；".join(items) + "。（依法须经批准的项目，经相关部门批准后方可开展经营活动）"
    if kind == "individual":
        pool = V.INDIVIDUAL_SCOPE[shop]
        items = rng.sample(pool, min(max(2, n_items), len(pool)))
        return "、".join(items) + "。（依法须经批准的项目，经相关部门批准后方可开展经营活动）"
    items = rng.sample(V.SCOPE_ITEMS, min(n_items, len(V.SCOPE_ITEMS)))
    style = rng.random()
    if style < 0.4 and len(items) >= 3:
        k = max(1, len(items) * 2 // 3)
        return ("一般项目：" + "；".join(items[:k]) + "（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）"
                "许可项目：" + "；".join(items[k:]) + "（依法须经批准的项目，经相关部门批准后方可开展经营活动，"
                "具体经营项目以相关部门批准文件或许可证件为准）")
    if style < 0.6 and len(items) >= 2:
        return "一般经营项目是：" + "；".join(items[:-1]) + "。许可经营项目是：" + items[-1] + "。"
    return "；".join(items) + "。（依法须经批准的项目，经相关部门批准后方可开展经营活动）"


def authority(place_city, dist, issue):
    city = place_city
    if issue[0] >= 2019 or city == "深圳市":
        if dist and rng_bool_from(city + dist + str(issue)):
            return f"{city}{dist}市场监督管理局" if city != "深圳市" else f"{city}市场监督管理局{dist[:-1]}监管局"
        return f"{city}市场监督管理局"
    if dist and rng_bool_from(city + dist):
        return f"{city}工商行政管理局{dist[:-1]}分局"
    return f"{city}工商行政管理局"


def rng_bool_from(s):
    return sum(map(ord, s)) % 2 == 0


def make_entity(rng, layout):
    """Data of one license: read fields + everything else that is printed."""
    e = {"layout": layout}
    if layout == "cooperative":
        prov, city, county, code, towns, villages = rng.choice(V.RURAL)
        town = rng.choice(towns)
        e["name"] = f"{county}{town}{rng.choice(V.COOP_PREFIX)}{rng.choice(V.COOP_PRODUCTS)}" + \
            ("农民专业合作社" if rng.random() < 0.5 else "专业合作社")
        e["uscc"] = make_uscc(rng, "coop", code)
        e["kind"] = "农民专业合作社"
        e["rep_label"] = "法定代表人"
        e["rep"] = person_name(rng)
        e["capital_label"] = "成员出资总额"
        wan = rng.choice([10, 20, 30, 50, 80, 100, 120, 150, 200, 300, 500, 600, 1000])
        e["capital"] = capital_text(rng, wan)
        e["est"] = rand_date(rng, 2008, 2024)
        e["addr_label"] = "住所"
        e["address"] = (prov if rng.random() < 0.5 else "") + city + county + town + rng.choice(villages) + \
            (f"{rng.randint(1, 120)}号" if rng.random() < 0.6 else "")
        e["scope_label"] = "业务范围"
        e["scope_kind"] = "coop"
        e["term"] = "长期" if rng.random() < 0.5 else cn_date(e["est"]) + "至长期"
        e["term_label"] = "营业期限"
        e["city"], e["dist"] = city, county
        e["entity"] = "coop"
    elif layout == "individual":
        place = rng.choice(V.PLACES)
        prov, city, dist, code = place[0], place[1], place[2], place[3]
        shop, cat = rng.choice(V.SHOP_TYPES)
        owner = rng.choice(V.SHOP_OWNERS)
        prefix = city + dist if rng.random() < 0.75 else (dist or city)
        e["name"] = prefix + owner + shop
        e["uscc"] = make_uscc(rng, "individual", code)
        e["kind"] = "个体工商户"
        e["rep_label"] = "经营者"
        e["rep"] = person_name(rng)
        e["form"] = "个人经营" if rng.random() < 0.7 else "家庭经营"
        e["print_form"] = rng.random() < 0.7
        e["capital_label"], e["capital"] = None, ""
        e["est"] = rand_date(rng, 2000, 2024)
        e["est_label"] = "注册日期"
        e["addr_label"] = "经营场所"
        e["address"] = address(rng, place, long=rng.random() < 0.5)
        e["scope_label"] = "经营范围"
        e["scope_kind"] = "individual"
        e["shop"] = cat
        e["city"], e["dist"] = city, dist
        e["entity"] = "individual"
    else:
        place = rng.choice(V.PLACES)
        prov, city, dist, code, short = place[0], place[1], place[2], place[3], place[4]
        z, ind = zihao(rng), rng.choice(V.INDUSTRIES)
        form = rng.random()
        e["rep_label"] = "法定代表人"
        e["capital_label"] = "注册资本"
        e["addr_label"] = "住所"
        e["term_label"] = "营业期限"
        wan = rng.choice([3, 10, 50, 100, 100, 200, 300, 500, 500, 800, 1000, 1000, 1200, 2000, 3000, 5000,
                          6800, 10000, 12000, 20000, 50500])
        if form < 0.08:  # branch: 负责人, no capital printed
            parent = f"{city}{z}{ind}有限公司" if rng.random() < 0.6 else f"{z}{ind}股份有限公司"
            e["name"] = parent + (dist[:-1] if dist else rng.choice(["第一", "城东", "南城"])) + "分公司"
            e["kind"] = rng.choice(V.BRANCH_KINDS)
            e["rep_label"] = "负责人"
            e["capital_label"] = None
            e["addr_label"] = "营业场所"
        elif form < 0.14:  # limited partnership
            e["name"] = f"{city}{z}{rng.choice(['投资', '股权投资', '创业投资', '企业管理'])}合伙企业（有限合伙）"
            e["kind"] = "有限合伙企业"
            e["rep_label"] = "执行事务合伙人"
            e["capital_label"] = "出资额"
            e["addr_label"] = "主要经营场所"
            e["term_label"] = "合伙期限"
        elif form < 0.18:  # sole proprietorship
            e["name"] = f"{city}{dist}{z}{ind}{rng.choice(['商行', '经营部', '工作室', '服务部'])}"
            e["kind"] = "个人独资企业"
            e["rep_label"] = "投资人"
            e["capital_label"] = None
        elif form < 0.30:  # joint-stock
            e["name"] = rng.choice([f"{city}{z}{ind}股份有限公司", f"{z}{ind}股份有限公司", f"{prov or city}{z}{ind}股份有限公司"])
            e["kind"] = rng.choice(V.SHARE_KINDS)
            wan = max(wan, 500)
        elif form < 0.42:  # bracketed region
            reg, rcity = rng.choice(V.REGIONS)
            e["name"] = rng.choice([f"{z}（{short}）{ind}有限公司", f"{reg}（{short}）{ind}有限公司",
                                    f"{z}{ind}（{short}）有限公司"])
            e["kind"] = pick_weighted(rng, V.COMPANY_KINDS)
        elif form < 0.48:
            e["name"] = f"{prov or city}{z}{ind}集团有限公司"
            e["kind"] = rng.choice(["其他有限责任公司", "有限责任公司（自然人投资或控股）", "有限责任公司（国有控股）"])
            wan = max(wan, 5000)
        else:
            e["name"] = f"{city}{z}{ind}有限公司" if rng.random() < 0.8 else f"{city}{dist}{z}{ind}有限公司"
            e["kind"] = pick_weighted(rng, V.COMPANY_KINDS)
        e["uscc"] = make_uscc(rng, "company", code)
        e["rep"] = person_name(rng)
        e["capital"] = capital_text(rng, wan) if e["capital_label"] else ""
        e["est"] = rand_date(rng, 2000, 2024)
        r = rng.random()
        if r < 0.55:
            e["term"] = cn_date(e["est"]) + "至长期" if e["capital_label"] != "出资额" else cn_date(e["est"]) + "至无固定期限"
        elif r < 0.75:
            e["term"] = "长期"
        else:
            end = (e["est"][0] + rng.choice([10, 20, 30, 50]), e["est"][1], max(1, e["est"][2] - 1))
            e["term"] = cn_date(e["est"]) + "至" + cn_date(end)
        e["address"] = address(rng, place, long=rng.random() < 0.85)
        e["scope_label"] = "经营范围"
        e["scope_kind"] = "company"
        e["city"], e["dist"] = city, dist
        e["entity"] = "company"
    e.setdefault("est_label", "成立日期")
    e.setdefault("term_label", "营业期限")
    e.setdefault("term", cn_date(e["est"]) + "至长期")
    e["issue"] = later_date(rng, e["est"], 8)
    e["authority"] = authority(e["city"], e["dist"], e["issue"])
    e["cert_no"] = "".join(rng.choice("0123456789") for _ in range(rng.choice([14, 15, 16, 20])))
    if rng.random() < 0.3:
        e["cert_no"] = "S" + e["cert_no"][:13]
    return e


# ---------------------------------------------------------------- drawing helpers
INK = (22, 22, 24)


def tokens(text):
    """Line-break units: a run of ASCII letters/digits stays together."""
    return re.findall(r"[A-Za-z0-9.\-:/]+|.", text)


NO_LINE_START = set("，。；、）：」』！？%")


def wrap(text, fnt, width):
    lines, cur = [], ""
    for tok in tokens(text):
        if fnt.getlength(cur + tok) <= width or not cur:
            cur += tok
        elif tok in NO_LINE_START:  # hang closing punctuation on the line
            cur += tok
        else:
            lines.append(cur)
            cur = tok
    if cur:
        lines.append(cur)
    return lines


def draw_spaced(draw, x, y, text, fnt, total_w, fill=INK):
    """Distribute the characters of text over total_w (anchor left-baseline)."""
    widths = [fnt.getlength(c) for c in text]
    if len(text) == 1:
        draw.text((x, y), text, font=fnt, fill=fill, anchor="ls")
        return
    gap = (total_w - sum(widths)) / (len(text) - 1)
    cx = x
    for c, w in zip(text, widths):
        draw.text((cx, y), c, font=fnt, fill=fill, anchor="ls")
        cx += w + gap


def label_string(label, style, maxlen):
    if style == "fullwidth":
        if len(label) == 2:
            return label[0] + "\u3000\u3000" + label[1] if maxlen >= 4 else label
        if len(label) == 3 and maxlen >= 5:
            return label[0] + "\u3000" + label[1] + "\u3000" + label[2]
        return label
    if style == "ascii":
        if len(label) == 2:
            return label[0] + "    " + label[1]
        if len(label) == 3:
            return " ".join(label)
        return label
    return label


def star_points(cx, cy, r, rot=-90):
    pts = []
    for i in range(10):
        rr = r if i % 2 == 0 else r * 0.382
        a = math.radians(rot + i * 36)
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def seal_mask(size, text, fnt_key, rng, sub=None, inner_ring=False, digits=None):
    """A round seal drawn as an 'L' ink mask of size x size."""
    S = size
    m = Image.new("L", (S, S), 0)
    d = ImageDraw.Draw(m)
    c = S / 2
    ring = max(3, int(S * 0.035))
    d.ellipse([ring / 2, ring / 2, S - ring / 2, S - ring / 2], outline=255, width=ring)
    if inner_ring:
        g = S * 0.06
        d.ellipse([g, g, S - g, S - g], outline=255, width=max(1, ring // 3))
    d.polygon(star_points(c, c, S * 0.16), fill=255)
    n = len(text)
    span = min(250.0, 22.0 * n + 30)
    # glyph height from the arc length available per character (glyphs are narrowed to 0.82)
    r_est = S / 2 - 1.5 * ring - S * 0.085
    fs = int(min(S * 0.14, 2 * math.pi * r_est * span / 360 / n * 0.92))
    f = font(fnt_key, fs)
    r_text = S / 2 - 1.5 * ring - S * 0.012 - fs * 0.55
    for i, ch in enumerate(text):
        th = -span / 2 + span * (i + 0.5) / n
        glyph = Image.new("L", (fs * 2, fs * 2), 0)
        ImageDraw.Draw(glyph).text((fs, fs), ch, font=f, fill=255, anchor="mm")
        # compress horizontally like seal typography
        glyph = glyph.resize((int(fs * 2 * 0.82), fs * 2))
        glyph = glyph.rotate(-th, resample=Image.BICUBIC, expand=True)
        px = c + r_text * math.sin(math.radians(th))
        py = c - r_text * math.cos(math.radians(th))
        m.paste(255, (int(px - glyph.width / 2), int(py - glyph.height / 2)), glyph)
    if sub:
        f2 = font(fnt_key, int(S * 0.085))
        d.text((c, c + S * 0.22), sub, font=f2, fill=255, anchor="mm")
    if digits:
        f3 = font("sans", int(S * 0.06))
        k = len(digits)
        for i, ch in enumerate(digits):
            th = 180 + 50 - 100 * (i + 0.5) / k
            glyph = Image.new("L", (int(S * 0.12), int(S * 0.12)), 0)
            ImageDraw.Draw(glyph).text((glyph.width / 2, glyph.height / 2), ch, font=f3, fill=255, anchor="mm")
            glyph = glyph.rotate(-th + 180, resample=Image.BICUBIC, expand=True)
            rr = S / 2 - ring - S * 0.06
            px = c + rr * math.sin(math.radians(th))
            py = c - rr * math.cos(math.radians(th))
            m.paste(255, (int(px - glyph.width / 2), int(py - glyph.height / 2)), glyph)
    return m


def stamp(img, mask, center, rng, nrng, color=(200, 28, 36), strength=0.85, angle=0.0):
    """Multiply a red seal onto img with uneven ink."""
    if angle:
        mask = mask.rotate(angle, resample=Image.BICUBIC)
    a = np.asarray(mask, dtype=np.float32) / 255.0
    h, w = a.shape
    lo = nrng.random((max(2, h // 24), max(2, w // 24))).astype(np.float32)
    tex = np.asarray(Image.fromarray((lo * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), dtype=np.float32) / 255
    grain = nrng.random((h, w)).astype(np.float32)
    a = a * np.clip(0.55 + 0.6 * tex, 0, 1) * (grain > 0.08) * strength
    x0, y0 = int(center[0] - w / 2), int(center[1] - h / 2)
    X0, Y0 = max(0, x0), max(0, y0)
    X1, Y1 = min(img.width, x0 + w), min(img.height, y0 + h)
    if X1 <= X0 or Y1 <= Y0:
        return
    region = np.asarray(img.crop((X0, Y0, X1, Y1)), dtype=np.float32)
    aa = a[Y0 - y0:Y1 - y0, X0 - x0:X1 - x0, None]
    col = np.array(color, dtype=np.float32)[None, None, :] / 255.0
    out = region * (1 - aa * (1 - col))
    img.paste(Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)), (X0, Y0))


def qr_block(draw, x, y, size, rng):
    n = rng.choice([25, 29, 33])
    cell = size / n
    mods = [[rng.random() < 0.5 for _ in range(n)] for _ in range(n)]
    draw.rectangle([x - cell, y - cell, x + size + cell, y + size + cell], fill=(255, 255, 255))
    for i in range(n):
        for j in range(n):
            fin = (i < 8 and j < 8) or (i < 8 and j >= n - 8) or (i >= n - 8 and j < 8)
            if fin:
                continue
            if mods[i][j]:
                draw.rectangle([x + j * cell, y + i * cell, x + (j + 1) * cell - 0.5, y + (i + 1) * cell - 0.5], fill=(10, 10, 10))
    for (fi, fj) in [(0, 0), (0, n - 7), (n - 7, 0)]:
        X, Y = x + fj * cell, y + fi * cell
        draw.rectangle([X, Y, X + 7 * cell, Y + 7 * cell], fill=(10, 10, 10))
        draw.rectangle([X + cell, Y + cell, X + 6 * cell, Y + 6 * cell], fill=(255, 255, 255))
        draw.rectangle([X + 2 * cell, Y + 2 * cell, X + 5 * cell, Y + 5 * cell], fill=(10, 10, 10))


def emblem(draw, cx, cy, r):
    """National-emblem placeholder: red disc, gold ring and stars, gold base."""
    gold, red = (214, 170, 60), (206, 30, 36)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=gold)
    draw.ellipse([cx - r * 0.86, cy - r * 0.86, cx + r * 0.86, cy + r * 0.86], fill=red)
    draw.polygon(star_points(cx, cy - r * 0.28, r * 0.26), fill=gold)
    for k in range(4):
        a = math.radians(-150 + k * 40)
        draw.polygon(star_points(cx + r * 0.5 * math.cos(a) + r * 0.12, cy - r * 0.28 + r * 0.5 * math.sin(a) + r * 0.28,
                                 r * 0.09), fill=gold)
    draw.rectangle([cx - r * 0.45, cy + r * 0.3, cx + r * 0.45, cy + r * 0.42], fill=gold)
    for k in range(5):
        xx = cx - r * 0.36 + k * r * 0.18
        draw.rectangle([xx, cy + r * 0.12, xx + r * 0.08, cy + r * 0.3], fill=gold)
    draw.polygon([(cx - r * 0.9, cy + r * 0.55), (cx + r * 0.9, cy + r * 0.55), (cx + r * 0.7, cy + r * 1.0),
                  (cx - r * 0.7, cy + r * 1.0)], fill=red, outline=gold)


def paper(W, H, rng, nrng, tint=None):
    base = np.array(tint or rng.choice([(246, 245, 236), (243, 246, 236), (248, 247, 242), (241, 244, 233),
                                         (250, 249, 245)]), dtype=np.float32)
    # low-res guilloche / security pattern, upscaled (cheap)
    s = 4
    h, w = H // s + 1, W // s + 1
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f1, f2 = rng.uniform(0.03, 0.07), rng.uniform(0.01, 0.03)
    pat = np.sin(xx * f1 + 3.0 * np.sin(yy * f2)) * np.sin(yy * f1 * 0.9 + 2.5 * np.sin(xx * f2 * 1.3))
    amp = rng.uniform(0.0, 5.0)
    lines = (np.abs(pat) < 0.08).astype(np.float32) * amp
    noise = nrng.normal(0, 1.2, (h, w)).astype(np.float32)
    arr = base[None, None, :] - (lines + noise)[:, :, None] * np.array([0.9, 0.5, 0.9], dtype=np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).resize((W, H), Image.BILINEAR)
    return img


def frame(draw, W, H, rng, band):
    """Decorative border: outer rule, rope band of interleaved sine waves, inner rule."""
    col = rng.choice([(176, 128, 70), (160, 60, 50), (150, 120, 80), (120, 110, 90)])
    m = int(min(W, H) * rng.uniform(0.025, 0.04))
    lw = max(2, int(min(W, H) * 0.002))
    draw.rectangle([m, m, W - m, H - m], outline=col, width=lw * 2)
    inner = m + band
    draw.rectangle([inner, inner, W - inner, H - inner], outline=col, width=lw)
    if rng.random() < 0.85:  # ornamental rope
        mid = m + band / 2
        amp = band * 0.32
        period = band * 1.6
        for phase in (0, math.pi):
            for side in range(4):
                pts = []
                length = (W - 2 * mid) if side in (0, 2) else (H - 2 * mid)
                steps = int(length / 6)
                for k in range(steps + 1):
                    t = k * length / steps
                    o = amp * math.sin(t / period * 2 * math.pi + phase)
                    if side == 0:
                        pts.append((mid + t, mid + o))
                    elif side == 2:
                        pts.append((mid + t, H - mid + o))
                    elif side == 1:
                        pts.append((mid + o, mid + t))
                    else:
                        pts.append((W - mid + o, mid + t))
                draw.line(pts, fill=col, width=lw)
    return m + band


# ---------------------------------------------------------------- license layouts
class Layout:
    def __init__(self, rng, W, H, lab_key, val_key, s):
        self.rng, self.W, self.H = rng, W, H
        self.lab_key, self.val_key = lab_key, val_key
        self.s = s
        self.ops = []  # deferred drawing: (kind, args)
        self.wrapped = set()
        self.overflow = False
        self.scope_lines = 0

    def column(self, rows, x0, x1, y0, style, pitch, row_gap, maxlen=None, limit=None):
        """Lay out label/value rows; returns bottom baseline.

        rows: list of (label, value, field_key). The value x is fixed for the column;
        long values wrap onto lines starting at that x.
        """
        s = self.s
        lf = font(self.lab_key, s)
        vf = font(self.val_key, int(s * self.val_scale))
        maxlen = maxlen or max(len(r[0]) for r in rows)
        lab_w = maxlen * s
        vx = x0 + lab_w + s * self.gap
        y = y0
        for i, (label, value, key) in enumerate(rows):
            width = x1 - vx
            if key == "scope":
                # scope is the last row of its column: 3-10 lines that stay on the paper
                room = 10 if limit is None else min(10, int((limit - y) / pitch) + 1)
                target = min(room, self.rng.randint(3, 10))
                n, lines = 1, wrap(self.scope_fn(1), vf, width)
                while len(lines) < target and n < 24:
                    n += 1
                    lines = wrap(self.scope_fn(n), vf, width)
                while len(lines) > room and n > 1:
                    n -= 1
                    lines = wrap(self.scope_fn(n), vf, width)
                self.scope_lines = len(lines)
                if len(lines) > room:
                    self.overflow = True
            else:
                lines = wrap(value, vf, width)
            if style == "justify" and len(label) < maxlen:
                self.ops.append(("spaced", (x0, y, label, lf, lab_w)))
            else:
                self.ops.append(("text", (x0, y, label_string(label, style, maxlen), lf)))
            for k, ln in enumerate(lines):
                self.ops.append(("text", (vx, y + k * pitch, ln, vf)))
            if len(lines) > 1 and key and key != "scope":
                self.wrapped.add(key)
            y += (len(lines) - 1) * pitch
            if i < len(rows) - 1:
                y += row_gap
        return y

    def flush(self, draw):
        for kind, a in self.ops:
            if kind == "spaced":
                x, y, t, f, w = a
                draw_spaced(draw, x, y, t, f, w)
            else:
                x, y, t, f = a
                draw.text((x, y), t, font=f, fill=INK, anchor="ls")


def rows_for(e, vertical):
    """Printed rows (label, value, truth key) for the left/right (or single) column."""
    name = ("名称", e["name"], "name")
    kind = ("类型", e["kind"], "kind")
    rep = (e["rep_label"], e["rep"], "legal_representative")
    cap = (e["capital_label"], e["capital"], "registered_capital") if e.get("capital_label") else None
    est = (e["est_label"], cn_date(e["est"]), "established")
    term = (e["term_label"], e["term"], None) if e["layout"] != "individual" else None
    addr = (e["addr_label"], e["address"], "address")
    scope = (e["scope_label"], None, "scope")
    form = ("组成形式", e["form"], None) if e.get("print_form") else None
    if e["layout"] == "individual":
        if vertical:
            return [r for r in [name, kind, rep, form, addr, est, scope] if r], None
        return [name, kind, rep, scope], [r for r in [form, est, addr] if r]
    if vertical:
        return [r for r in [name, kind, rep, cap, est, term, addr, scope] if r], None
    return [name, kind, rep, scope], [r for r in [cap, est, term, addr] if r]


def render_license(e, rng, nrng):
    layout = e["layout"]
    vertical = layout == "vertical_copy" or (layout == "individual" and rng.random() < 0.35)
    copy = layout in ("horizontal_copy", "vertical_copy") or (layout in ("individual", "cooperative") and rng.random() < 0.4)
    if vertical:
        W = rng.randint(2300, 2800)
        H = int(W * 1.414)
    else:
        W = rng.randint(2400, 3400)
        H = int(W / rng.uniform(1.38, 1.45))
    lab_key = pick_weighted(rng, LABEL_FONTS)
    val_key = pick_weighted(rng, VALUE_FONTS)
    img = paper(W, H, rng, nrng)
    draw = ImageDraw.Draw(img)
    short = min(W, H)
    band = int(short * rng.uniform(0.018, 0.03))
    inner = frame(draw, W, H, rng, band)

    # ---- header
    top = inner + short * 0.02
    er = short * (0.045 if not vertical else 0.055)
    ecx, ecy = W / 2, top + er * 1.1
    emblem(draw, ecx, ecy, er)
    # QR top-right with its caption
    qs = short * rng.uniform(0.12, 0.15)
    qx = W - inner - short * 0.05 - qs
    qy = top + short * 0.005
    qr_block(draw, qx, qy, qs, rng)
    qf = font(lab_key if rng.random() < 0.5 else val_key, int(short * 0.0125))
    qtext = "扫描二维码登录“国家企业信用信息公示系统”了解更多登记、备案、许可、监管信息。"
    qlines = wrap(qtext, qf, qs * 1.35)
    for k, ln in enumerate(qlines):
        draw.text((qx + qs / 2, qy + qs + short * 0.025 + k * short * 0.018), ln, font=qf, fill=INK, anchor="ms")
    q_bottom = qy + qs + short * 0.025 + (len(qlines) - 1) * short * 0.018
    q_left = qx + qs / 2 - qs * 1.35 / 2
    # USCC top-left
    sf = font(lab_key, int(short * 0.022))
    lx = inner + short * 0.045
    cy0 = top + short * 0.035
    draw.text((lx, cy0), "统一社会信用代码", font=sf, fill=INK, anchor="ls")
    codef = font(rng.choice(["sans", "serif", val_key]), int(short * 0.03))
    draw.text((lx, cy0 + short * 0.045), e["uscc"], font=codef, fill=INK, anchor="ls")
    small = font(val_key, int(short * 0.017))
    y_small = cy0 + short * 0.085
    if copy and rng.random() < 0.7:
        draw.text((lx, y_small), "副本编号：1-1" if rng.random() < 0.7 else f"副本编号：1-{rng.randint(1, 3)}",
                  font=small, fill=INK, anchor="ls")
        y_small += short * 0.03
    cert_right = rng.random() < 0.4 and not vertical
    if cert_right:
        q_bottom += short * 0.03
        draw.text((qx + qs, q_bottom), "证照编号：" + e["cert_no"], font=small, fill=INK, anchor="rs")
    else:
        draw.text((lx, y_small), "证照编号：" + e["cert_no"], font=small, fill=INK, anchor="ls")
    left_right = lx + max(sf.getlength("统一社会信用代码"), codef.getlength(e["uscc"]),
                          0 if cert_right else small.getlength("证照编号：" + e["cert_no"]))
    # title, spaced; pushed below the QR caption when it would reach it
    tsize = int(short * (0.075 if not vertical else 0.08))
    title_key = lab_key if lab_key != "sans" else "sans_bold"
    tf = font(title_key, tsize)
    tw = tsize * 4 + tsize * rng.uniform(0.6, 1.2) * 3
    if W / 2 + tw / 2 > q_left - short * 0.02:
        tw = min(tw, 2 * (q_left - short * 0.02 - W / 2))
        tw = max(tw, tsize * 4.6)
    ty = ecy + er * 1.2 + tsize
    if W / 2 + tw / 2 > q_left - short * 0.02:
        ty = max(ty, q_bottom + tsize * 1.1)
    if W / 2 - tw / 2 < left_right + short * 0.02:
        ty = max(ty, y_small + tsize * 1.05)
    draw_spaced(draw, W / 2 - tw / 2, ty, "营业执照", tf, tw)
    y_after_title = ty + tsize * 0.3
    if copy:
        cf = font(title_key, int(tsize * 0.38))
        y_after_title += tsize * 0.55
        draw.text((W / 2, y_after_title), "（副本）", font=cf, fill=INK, anchor="ms")

    # ---- body
    left_rows, right_rows = rows_for(e, vertical)
    scope_seed = rng.randrange(1 << 30)

    def scope_fn(n):
        return scope_text(random.Random(scope_seed), e["scope_kind"], n, e.get("shop"))
    bottom_strip = H - inner - short * 0.035
    for attempt in range(6):
        scale = 1.0 - 0.06 * attempt
        if vertical:
            s = int(W * rng.uniform(0.025, 0.03) * scale)
        else:
            s = int(short * rng.uniform(0.022, 0.027) * scale)
        L = Layout(rng, W, H, lab_key, val_key, s)
        L.val_scale = rng.uniform(0.92, 1.04)
        L.gap = rng.uniform(0.9, 1.8)
        style = pick_weighted(rng, [("justify", 45), ("fullwidth", 30), ("ascii", 12), ("none", 13)])
        pitch = s * rng.uniform(1.4, 1.65)
        row_gap = s * rng.uniform(1.9, 2.4)
        body_y = max(y_after_title + s * 2.2, q_bottom + s * 1.9)
        reg_h = short * 0.2  # 登记机关 block height
        if vertical:
            x0, x1 = W * rng.uniform(0.1, 0.13), W * rng.uniform(0.86, 0.9)
            limit = bottom_strip - reg_h - s
            L.scope_fn = scope_fn
            bottom = L.column(left_rows, x0, x1, body_y, style, pitch, row_gap, limit=limit)
            ok = bottom <= limit and not L.overflow
            reg_top = bottom + s * 1.5
        else:
            split = W * rng.uniform(0.5, 0.56)
            x0 = inner + W * rng.uniform(0.035, 0.06)
            x1 = split - W * 0.02
            rx0 = split + W * 0.01
            rx1 = W - inner - W * rng.uniform(0.03, 0.06)
            L.scope_fn = scope_fn
            lbottom = L.column(left_rows, x0, x1, body_y, style, pitch, row_gap, limit=bottom_strip - s * 1.2)
            rbottom = L.column(right_rows, rx0, rx1, body_y, style, pitch, row_gap)
            reg_top = rbottom + s * 1.6
            ok = lbottom <= bottom_strip - s * 1.2 and reg_top + reg_h <= bottom_strip and not L.overflow
        if ok:
            break
    L.flush(draw)

    # ---- 登记机关 + seal over the date
    regf = font(title_key, int(short * 0.034))
    if vertical:
        rcx = W * rng.uniform(0.62, 0.7)
    else:
        rcx = (rx0 + rx1) / 2 + W * rng.uniform(-0.02, 0.04)
    rty = max(reg_top + short * 0.04, bottom_strip - reg_h + short * 0.05)
    rw = short * 0.034 * 4 * rng.uniform(1.3, 1.7)
    draw_spaced(draw, rcx - rw / 2, rty, "登记机关", regf, rw)
    datef = font(val_key, int(short * 0.03))
    dty = rty + short * 0.075
    draw.text((rcx, dty), cn_date(e["issue"]), font=datef, fill=INK, anchor="ms")
    seal_size = int(short * rng.uniform(0.17, 0.2))
    seal_font = rng.choice(["serif_bold", "sans_bold", "zenhei"])
    m = seal_mask(seal_size, e["authority"], seal_font, rng, inner_ring=rng.random() < 0.3)
    stamp(img, m, (rcx + short * rng.uniform(-0.03, 0.05), (rty + dty) / 2 - short * rng.uniform(0.0, 0.03)), rng, nrng,
          angle=rng.uniform(-15, 15))
    # ---- bottom strip
    bf = font(val_key if rng.random() < 0.5 else lab_key, int(short * 0.0135))
    by = H - inner - short * 0.018
    gsxt = "国家企业信用信息公示系统网址：http://www.gsxt.gov.cn"
    annual = "市场主体应当于每年1月1日至6月30日通过国家企业信用信息公示系统报送公示年度报告。"
    maker = "国家市场监督管理总局监制" if e["issue"][0] >= 2018 else "国家工商行政管理总局监制"
    if vertical:
        draw.text((W / 2, by - short * 0.045), gsxt, font=bf, fill=INK, anchor="ms")
        draw.text((W / 2, by - short * 0.022), annual, font=bf, fill=INK, anchor="ms")
        draw.text((W / 2, by), maker, font=bf, fill=INK, anchor="ms")
    else:
        draw.text((inner + short * 0.04, by - short * 0.022), gsxt, font=bf, fill=INK, anchor="ls")
        draw.text((inner + short * 0.04, by), annual, font=bf, fill=INK, anchor="ls")
        draw.text((W - inner - short * 0.04, by), maker, font=bf, fill=INK, anchor="rs")

    fields = {
        "name": e["name"], "uscc": e["uscc"], "kind": e["kind"], "legal_representative": e["rep"],
        "address": e["address"], "registered_capital": e["capital"], "established": iso_date(e["est"]),
    }
    meta = {"font": family_of(val_key), "label_font": family_of(lab_key), "paper": "portrait" if vertical else "landscape",
            "copy": copy, "label_style": style, "wrapped": sorted(L.wrapped)}
    return img, fields, meta


# ---------------------------------------------------------------- not-license images
def render_not_license(rng, nrng):
    kind = rng.choice(["seal", "id_card", "notice", "receipt", "photo"])
    val_key = pick_weighted(rng, VALUE_FONTS)
    if kind == "seal":
        W = H = rng.randint(1400, 2200)
        img = Image.new("RGB", (W, H), (250, 250, 248))
        place = rng.choice(V.PLACES)
        name = f"{place[1]}{zihao(rng)}{rng.choice(V.INDUSTRIES)}有限公司"
        m = seal_mask(int(W * 0.6), name, rng.choice(["serif_bold", "sans_bold"]), rng,
                      sub=rng.choice([None, "合同专用章", "财务专用章"]),
                      digits="".join(rng.choice("0123456789") for _ in range(13)))
        stamp(img, m, (W / 2, H / 2), rng, nrng, angle=rng.uniform(-20, 20))
    elif kind == "id_card":
        W, H = 2400, 1514
        img = Image.new("RGB", (W, H), (238, 242, 246))
        d = ImageDraw.Draw(img)
        d.rounded_rectangle([40, 40, W - 40, H - 40], radius=80, fill=(222, 232, 240), outline=(170, 190, 210), width=4)
        lf, vf = font("sans_bold", 64), font(val_key, 70)
        y = 260
        place = rng.choice(V.PLACES)
        rows = [("姓名", person_name(rng)), ("性别", rng.choice(["男", "女"]) + "　　民族　汉"),
                ("出生", "{}年{}月{}日".format(*rand_date(rng, 1960, 2002))), ("住址", address(rng, place, long=False))]
        for lab, val in rows:
            d.text((200, y), lab, font=lf, fill=(60, 110, 170), anchor="ls")
            for k, ln in enumerate(wrap(val, vf, 1200)):
                d.text((420, y + k * 95), ln, font=vf, fill=INK, anchor="ls")
                y += 95 if k else 0
            y += 170
        idn = place[3] + "".join(rng.choice("0123456789") for _ in range(12))
        d.text((200, H - 180), "公民身份号码", font=lf, fill=(60, 110, 170), anchor="ls")
        d.text((700, H - 180), idn, font=font("sans", 80), fill=INK, anchor="ls")
        d.rectangle([W - 700, 220, W - 200, 860], fill=(205, 215, 225))
        d.ellipse([W - 560, 300, W - 340, 560], fill=(150, 160, 170))
        d.pieslice([W - 640, 560, W - 260, 980], 180, 360, fill=(150, 160, 170))
    elif kind == "notice":
        W, H = 2480, 3508
        img = paper(W, H, rng, nrng, tint=(250, 250, 248))
        d = ImageDraw.Draw(img)
        tf, bf = font("sans_bold", 110), font(val_key, 62)
        d.text((W / 2, 420), rng.choice(["关于开展安全生产大检查的通知", "关于召开年度工作会议的通知", "关于举办职工运动会的通知"]),
               font=tf, fill=INK, anchor="ms")
        d.text((260, 620), "各部门、各单位：", font=bf, fill=INK, anchor="ls")
        y = 740
        paras = rng.sample(V.PROSE, 5) + ["特此通知。"]
        for p in paras:
            for k, ln in enumerate(wrap("\u3000\u3000" + p, bf, W - 520)):
                d.text((260, y), ln, font=bf, fill=INK, anchor="ls")
                y += 100
            y += 30
        d.text((W - 300, y + 200), "办公室", font=bf, fill=INK, anchor="rs")
        d.text((W - 300, y + 300), cn_date(rand_date(rng, 2016, 2024)), font=bf, fill=INK, anchor="rs")
    elif kind == "receipt":
        W, H = 2600, 1700
        img = paper(W, H, rng, nrng, tint=(248, 248, 244))
        d = ImageDraw.Draw(img)
        tf, bf = font("serif_bold", 90), font(val_key, 54)
        d.text((W / 2, 190), rng.choice(["收　款　收　据", "销售清单", "送货单"]), font=tf, fill=(150, 40, 40), anchor="ms")
        d.text((160, 320), "客户名称：" + f"{rng.choice(V.PLACES)[1]}{zihao(rng)}{rng.choice(V.INDUSTRIES)}有限公司",
               font=bf, fill=INK, anchor="ls")
        d.text((W - 160, 320), "No." + "".join(rng.choice("0123456789") for _ in range(8)), font=bf, fill=(150, 40, 40),
               anchor="rs")
        cols = [160, 900, 1300, 1750, 2440]
        heads = ["品名及规格", "数量", "单价", "金额"]
        top, rh = 380, 130
        goods = ["A4复印纸", "墨盒", "办公椅", "文件柜", "签字笔", "U盘", "打印机", "订书机"]
        total = 0
        for r in range(7):
            y = top + r * rh
            d.line([(cols[0], y), (cols[-1], y)], fill=(150, 40, 40), width=3)
            if r == 0:
                for c, h in enumerate(heads):
                    d.text(((cols[c] + cols[c + 1]) / 2, y + rh * 0.65), h, font=bf, fill=INK, anchor="ms")
            elif r < 6:
                q, p = rng.randint(1, 20), rng.randint(5, 900)
                total += q * p
                for c, t in enumerate([rng.choice(goods), str(q), f"{p:.2f}", f"{q * p:.2f}"]):
                    d.text(((cols[c] + cols[c + 1]) / 2, y + rh * 0.65), t, font=bf, fill=INK, anchor="ms")
            else:
                d.text((cols[0] + 40, y + rh * 0.65), f"合计（小写）：¥{total:.2f}", font=bf, fill=INK, anchor="ls")
        d.line([(cols[0], top + 7 * rh), (cols[-1], top + 7 * rh)], fill=(150, 40, 40), width=3)
        for x in cols:
            d.line([(x, top), (x, top + (6 if x not in (cols[0], cols[-1]) else 7) * rh)], fill=(150, 40, 40), width=3)
        d.text((160, top + 7 * rh + 120), "收款人：" + person_name(rng) + "　　开票日期：" + cn_date(rand_date(rng, 2018, 2024)),
               font=bf, fill=INK, anchor="ls")
    else:  # landscape-like gradient / blank
        W, H = rng.choice([(3000, 2000), (2400, 1800), (2000, 2000)])
        yy = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
        sky = np.array([120, 170, 230], dtype=np.float32)
        ground = np.array(rng.choice([(70, 120, 50), (160, 140, 100), (240, 240, 240)]), dtype=np.float32)
        horizon = rng.uniform(0.45, 0.7)
        t = np.clip((yy - horizon) * 8 + 0.5, 0, 1)
        arr = sky * (1 - t) + ground * t + nrng.normal(0, 6, (H, W, 1)).astype(np.float32)
        arr = np.broadcast_to(arr, (H, W, 3))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img, kind, family_of(val_key)


# ---------------------------------------------------------------- photo effects
def perspective_coeffs(dst, src):
    """Coefficients for Image.transform(PERSPECTIVE) mapping output dst quad -> input src quad."""
    A, b = [], []
    for (x, y), (u, v) in zip(dst, src):
        A.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        A.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    return np.linalg.solve(np.array(A, dtype=np.float64), np.array(b, dtype=np.float64)).tolist()


def desk(W, H, rng, nrng):
    kind = rng.choice(["wood", "wood", "grey", "dark", "white"])
    s = 8
    h, w = H // s + 1, W // s + 1
    if kind == "wood":
        base = np.array(rng.choice([(150, 104, 66), (120, 80, 50), (180, 140, 100)]), dtype=np.float32)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        lo = nrng.random((max(2, h // 6), 3)).astype(np.float32)
        warp = np.asarray(Image.fromarray((lo * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), dtype=np.float32) / 255
        grain = np.sin(yy * rng.uniform(0.3, 0.6) + warp * 6) * 12 + nrng.normal(0, 4, (h, w))
        arr = base[None, None] + grain[..., None] * np.array([1.0, 0.8, 0.6], dtype=np.float32)
    else:
        c = {"grey": (140, 140, 138), "dark": (50, 52, 55), "white": (225, 225, 222)}[kind]
        g = np.linspace(-1, 1, w, dtype=np.float32)[None, :] * rng.uniform(-15, 15)
        arr = np.array(c, dtype=np.float32)[None, None] + g[..., None] + nrng.normal(0, 3, (h, w, 1))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).resize((W, H), Image.BILINEAR)


def lighting(img, rng):
    W, H = img.size
    s = 8
    h, w = H // s + 1, W // s + 1
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    lin = ((xx / w - 0.5) * math.cos(a) + (yy / h - 0.5) * math.sin(a))
    g = 1.0 + lin * rng.uniform(0.1, 0.35)
    r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2)
    g = g * (1 - r2 * rng.uniform(0.1, 0.6))
    if rng.random() < 0.3:  # a soft shadow (hand / phone) across a corner
        cx, cy = rng.choice([(0, 0), (1, 0), (0, 1), (1, 1)])
        d = np.sqrt((xx / w - cx) ** 2 + (yy / h - cy) ** 2)
        g = g * (1 - 0.25 * np.clip((0.45 - d) / 0.2, 0, 1))
    g = g * rng.uniform(0.9, 1.05)
    g8 = np.asarray(Image.fromarray(np.clip(g * 128, 0, 255).astype(np.uint8)).resize((W, H), Image.BILINEAR),
                    dtype=np.uint16)
    arr = (np.asarray(img, dtype=np.uint16) * g8[..., None]) >> 7
    return Image.fromarray(np.minimum(arr, 255).astype(np.uint8))


def as_photo(img, rng, nrng, phone_size):
    """Place the paper on a desk with keystone perspective, skew and a soft shadow."""
    W, H = img.size
    if phone_size:
        CW, CH = (4000, 3000) if W >= H else (3000, 4000)
    else:
        f = rng.uniform(1.08, 1.3)
        CW, CH = int(W * f), int(H * f)
    fill = rng.uniform(0.72, 0.9)
    scale = min(CW * fill / W, CH * fill / H)
    pw, ph = W * scale, H * scale
    cx, cy = CW / 2 + rng.uniform(-0.04, 0.04) * CW, CH / 2 + rng.uniform(-0.04, 0.04) * CH
    ang = math.radians(rng.uniform(-3, 3))
    j = 0.06
    corners = [(-pw / 2, -ph / 2), (pw / 2, -ph / 2), (pw / 2, ph / 2), (-pw / 2, ph / 2)]
    # keystone: one edge shorter than the opposite + random jitter
    key = rng.uniform(-0.05, 0.05)
    dst = []
    for k, (x, y) in enumerate(corners):
        if k < 2:
            x *= 1 - key
        else:
            x *= 1 + key
        x += rng.uniform(-j, j) * pw * 0.5
        y += rng.uniform(-j, j) * ph * 0.5
        xr = x * math.cos(ang) - y * math.sin(ang)
        yr = x * math.sin(ang) + y * math.cos(ang)
        dst.append((cx + xr, cy + yr))
    src = [(0, 0), (W, 0), (W, H), (0, H)]
    coeffs = perspective_coeffs(dst, src)
    bg = desk(CW, CH, rng, nrng)
    # shadow
    smask = Image.new("L", (CW, CH), 0)
    off = (rng.uniform(-0.01, 0.02) * CW, rng.uniform(0.0, 0.02) * CH)
    ImageDraw.Draw(smask).polygon([(x + off[0], y + off[1]) for x, y in dst], fill=int(rng.uniform(70, 140)))
    smask = smask.resize((CW // 8, CH // 8)).filter(ImageFilter.GaussianBlur(CW / 300)).resize((CW, CH), Image.BILINEAR)
    bg = Image.composite(Image.new("RGB", (CW, CH), (10, 10, 10)), bg, smask)
    warped = img.transform((CW, CH), Image.PERSPECTIVE, coeffs, Image.BILINEAR)
    mask = Image.new("L", (CW, CH), 0)
    ImageDraw.Draw(mask).polygon(dst, fill=255)
    bg.paste(warped, (0, 0), mask)
    return bg, math.degrees(ang)


def watermark(img, rng, val_key):
    W, H = img.size
    text = rng.choice(["仅供办理银行开户使用，他用无效", "仅供数字证书办理使用", "此复印件仅供投标使用", "与原件一致"])
    layer = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(layer)
    f = font(rng.choice(["sans_bold", "ukai", val_key]), int(min(W, H) * 0.05))
    step_y = int(min(W, H) * 0.22)
    for k, y in enumerate(range(-H // 2, int(H * 1.5), step_y)):
        d.text(((k % 2) * W * 0.2 - W * 0.3, y), ("　" * 2).join([text] * 4), font=f, fill=255, anchor="ls")
    layer = layer.rotate(rng.uniform(20, 35), resample=Image.BICUBIC)
    col = rng.choice([(90, 90, 90), (40, 80, 170), (170, 40, 40)])
    a = np.asarray(layer, dtype=np.float32)[..., None] / 255 * rng.uniform(0.18, 0.35)
    arr = np.asarray(img, dtype=np.float32)
    arr = arr * (1 - a) + np.array(col, dtype=np.float32) * a
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------- one image
def layout_plan(split, count):
    """Deterministic layout list: horizontal 35% (+ remainder), copy 15%, vertical 15%,
    individual 15%, cooperative 8%, not_license 6%."""
    shares = [("horizontal_copy", 0.15), ("vertical_copy", 0.15), ("individual", 0.15), ("cooperative", 0.08),
              ("not_license", 0.06)]
    plan = []
    for name, p in shares:
        plan += [name] * int(round(p * count))
    plan += ["horizontal"] * (count - len(plan))
    random.Random(SPLIT_SEEDS[split] * 7 + 3).shuffle(plan)
    return plan[:count]


def make_one(args):
    split, idx, layout = args
    seed = SPLIT_SEEDS[split] * 1_000_003 + idx
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    effects = []
    if layout == "not_license":
        img, subject, fam = render_not_license(rng, nrng)
        fields = {k: "" for k in ("name", "uscc", "kind", "legal_representative", "address", "registered_capital",
                                  "established")}
        meta = {"font": fam, "subject": subject, "wrapped": []}
    else:
        e = make_entity(rng, layout)
        img, fields, meta = render_license(e, rng, nrng)
        if rng.random() < 0.15:
            # company seal stamped over the body of a submitted copy (covers part of the text)
            W, H = img.size
            m = seal_mask(int(min(W, H) * rng.uniform(0.2, 0.26)), e["name"] if len(e["name"]) <= 22 else e["name"][:22],
                          rng.choice(["serif_bold", "sans_bold"]), rng,
                          digits="".join(rng.choice("0123456789") for _ in range(13)))
            stamp(img, m, (W * rng.uniform(0.3, 0.7), H * rng.uniform(0.45, 0.75)), rng, nrng, angle=rng.uniform(-30, 30),
                  strength=rng.uniform(0.6, 0.85))
            effects.append("seal_overlap")
        if rng.random() < 0.1:
            img = watermark(img, rng, "serif")
            effects.append("watermark")
    # ---- capture
    photo = rng.random() < 0.4
    phone = photo and rng.random() < 0.62  # ~25% of all images are 4000x3000 phone photos
    if photo:
        img, ang = as_photo(img, rng, nrng, phone)
        effects += ["perspective", "shadow"]
        if abs(ang) >= 0.5:
            effects.append("skew")
    else:
        if rng.random() < 0.35:
            ang = rng.uniform(-3, 3)
            img = img.rotate(ang, resample=Image.BICUBIC, expand=True, fillcolor=(252, 252, 250))
            effects.append("skew")
        f = rng.uniform(0.55, 1.0)
        if f < 0.97:
            img = img.resize((int(img.width * f), int(img.height * f)), Image.LANCZOS)
    if photo or rng.random() < 0.3:
        img = lighting(img, rng)
        effects.append("lighting")
    if rng.random() < 0.08:
        img = img.convert("L").convert("RGB")
        effects.append("grayscale")
    if photo or rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
        effects.append("blur")
    if photo or rng.random() < 0.4:
        arr = np.asarray(img, dtype=np.int16)
        n = nrng.standard_normal(arr.shape[:2], dtype=np.float32) * rng.uniform(2, 7)
        arr = arr + n.astype(np.int16)[..., None]
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        effects.append("noise")
    rot = pick_weighted(rng, [(0, 70), (90, 10), (180, 10), (270, 10)])
    if rot:
        img = img.transpose({90: Image.ROTATE_90, 180: Image.ROTATE_180, 270: Image.ROTATE_270}[rot])
    png = rng.random() < 0.1 and "noise" not in effects and max(img.size) <= 3500
    fname = f"{idx:04d}.png" if png else f"{idx:04d}.jpg"
    buf = io.BytesIO()
    if png:
        img.save(buf, "PNG", optimize=False, compress_level=6)
    else:
        q = rng.randint(55, 92)
        img.save(buf, "JPEG", quality=q)
        effects.append("jpeg")
    rec = {"file": fname, "split": split, "is_license": layout != "not_license", "layout": layout, "font": meta["font"],
           "rotation": rot, "effects": effects, "width": img.width, "height": img.height, "wrapped": meta["wrapped"],
           "fields": fields}
    for k in ("label_font", "paper", "copy", "label_style", "subject"):
        if k in meta:
            rec[k] = meta[k]
    if not png:
        rec["jpeg_quality"] = q
    return rec, buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", required=True, choices=sorted(SPLIT_SEEDS))
    ap.add_argument("--count", type=int, default=120)
    ap.add_argument("--out", default="target/license-corpus")
    ap.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    a = ap.parse_args()
    font_files()  # fail early when a font is missing
    outdir = os.path.join(a.out, a.split)
    os.makedirs(outdir, exist_ok=True)
    for f in os.listdir(outdir):  # regenerate cleanly
        if re.fullmatch(r"\d{4}\.(jpg|png)|truth\.jsonl", f):
            os.remove(os.path.join(outdir, f))
    plan = layout_plan(a.split, a.count)
    t0 = time.time()
    work = [(a.split, i, plan[i]) for i in range(a.count)]
    recs = []
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            results = ex.map(make_one, work, chunksize=1)
            for rec, data in results:
                with open(os.path.join(outdir, rec["file"]), "wb") as fh:
                    fh.write(data)
                recs.append(rec)
    else:
        for w in work:
            rec, data = make_one(w)
            with open(os.path.join(outdir, rec["file"]), "wb") as fh:
                fh.write(data)
            recs.append(rec)
    for r in recs:
        if r["is_license"]:
            assert uscc_valid(r["fields"]["uscc"]), r
    with open(os.path.join(outdir, "truth.jsonl"), "w", encoding="utf-8") as fh:
        for r in recs:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{a.split}: {len(recs)} images in {outdir} ({time.time() - t0:.1f}s)")


if __name__ == "__main__":
    main()
