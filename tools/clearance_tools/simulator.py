"""Export simulator: nightly single-window deliveries for Liaoning, exactly as the real exports arrive.

    python -m clearance_tools.simulator --inbox DIR --start 2026-11-20 --days 30 [--scale 1.0] [--seed S]
        [--quirks all|none|q1,q2,...] [--break 2026-11-21:dec_head:truncated ...]

Writes one delivery folder `<inbox>/<YYYY-MM-DD>/` per export date (the Beijing date a row is
transmitted) with all five file kinds and MANIFEST.json last, per the export contract
(docs/spec/single-window-exports.md). The timelines follow the milestones of the metrics spec
(docs/spec/clearance-metrics.md).

How it works. Shipments are generated vectorised (numpy) in fixed blocks of CHUNK_DAYS arrival
days counted from the start date, each block with its own seeded random stream; vessel calls per
day have their own stream too. Every row gets a transmit day; rows are then buffered per export
date and a delivery is written as soon as no later block can add rows to it (no row precedes its
shipment's arrival day by more than LEAD_DAYS). Consequently:
- the same arguments give byte-identical output, and a longer run with the same start and seed
  reproduces the deliveries of a shorter one;
- shipments arrive from the start date on (cold start); their earlier rows (manifest lines,
  advance declarations filed before the start) are transmitted in the first delivery;
- rows transmitted after the last simulated date are not delivered (those shipments stay open).

Quirks (export contract, "Quirks"), each switchable, all on by default: see QUIRKS. Bad files
(quirk 8) only on request: `--break DATE:KIND:HOW`, HOW in BREAK_MODES; each breaks exactly one
thing in the kind's first file of that delivery (`truncated`, `empty` and `utf8` leave MANIFEST.json
describing the file as written, so only the file itself shows the defect).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from clearance.contract import DATA_FILE_PATTERN, KINDS, MANIFEST_NAME, data_file_name, iso6346_check_digit
from clearance_tools.delivery_writer import csv_record_count, manifest_entry, render_csv, write_manifest

QUIRKS = (
    "duplicates", "late", "versions", "shuffle", "bill_variants", "time_formats", "bom", "layout",
    "split_files", "unknown_codes", "bad_rows",
)
BREAK_MODES = ("missing", "row_count", "checksum", "truncated", "empty", "utf8")
KIND_ORDER = ("dec_head", "dec_result", "manifest", "vessel_event", "cargo_event")
DEFAULT_SEED = 20261120

H = 3600.0
DAY = 86400
EPOCH = date(1970, 1, 1)
CHUNK_DAYS = 7
LEAD_DAYS = 12  # no row is transmitted more than this many days before its shipment's arrival day

# Random stream tags (numpy SeedSequence entropy: [seed, tag, ...]).
_T_WORLD, _T_CALLS, _T_CHUNK, _T_DELIVERY, _T_QUIRK = 1, 2, 3, 4, 100

# ---------------------------------------------------------------------------------- reference data

PORTS = ("DLC", "YKP", "DDG", "JZH", "PJN", "HLD", "SHE")
SEA_PORTS = PORTS[:6]
P = {p: i for i, p in enumerate(PORTS)}
PORT_OFFICE = {"DLC": "0900", "YKP": "0900", "JZH": "0900", "PJN": "0900", "HLD": "0900", "DDG": "0930",
               "SHE": "0800", "BYQ": "0900"}
UNKNOWN_PORT = "BYQ"  # Bayuquan: a Yingkou port area missing from the sample dictionary
UNKNOWN_OFFICE = "0931"  # a Dandong sub-office missing from the office dictionary

# Container vessel calls per day at scale 1 (at least one per port and day), anchorage share.
CALL_RATE = np.array([22.0, 10.0, 2.5, 2.0, 1.5, 1.5])
ANCH_SHARE = np.array([0.75, 0.8, 0.6, 0.6, 0.6, 0.6])

# Declaration flows: (port, import?, TRAF_MODE, declarations per day at scale 1, advance share).
FLOWS = (
    ("DLC", True, 2, 720, 0.45), ("YKP", True, 2, 330, 0.40), ("DDG", True, 2, 60, 0.25),
    ("JZH", True, 2, 50, 0.30), ("PJN", True, 2, 40, 0.30), ("HLD", True, 2, 40, 0.25),
    ("SHE", True, 3, 100, 0.35), ("SHE", True, 5, 90, 0.50),
    ("DLC", False, 2, 660, 0.20), ("YKP", False, 2, 280, 0.20), ("DDG", False, 2, 55, 0.15),
    ("JZH", False, 2, 40, 0.15), ("PJN", False, 2, 30, 0.15), ("HLD", False, 2, 30, 0.15),
    ("SHE", False, 3, 80, 0.20), ("SHE", False, 5, 75, 0.25),
)
F_PORT = np.array([P[f[0]] for f in FLOWS])
F_IMP = np.array([f[1] for f in FLOWS])
F_MODE = np.array([f[2] for f in FLOWS])
F_RATE = np.array([f[3] for f in FLOWS], dtype=float)
F_ADV = np.array([f[4] for f in FLOWS])
WEEKDAY = np.array([1.05, 1.05, 1.05, 1.05, 1.05, 0.90, 0.85])  # Monday .. Sunday

BULK_SHARE = np.zeros(len(PORTS))  # share of sea import bills that are bulk, by port
BULK_SHARE[P["DLC"]], BULK_SHARE[P["YKP"]] = 0.05, 0.14
ORE_SHARE = np.zeros(len(PORTS))  # share of bulk bills that are ore (the rest grain and oil seeds)
ORE_SHARE[P["DLC"]], ORE_SHARE[P["YKP"]] = 0.35, 0.60
AUTO_SHARE_I = np.zeros(len(PORTS))
AUTO_SHARE_I[P["DLC"]], AUTO_SHARE_I[P["SHE"]] = 0.12, 0.30
AUTO_SHARE_E = np.zeros(len(PORTS))
AUTO_SHARE_E[P["DLC"]], AUTO_SHARE_E[P["SHE"]] = 0.08, 0.10

HS_ORE = ("2601111000", "2601112000", "2601120000", "2603000010", "2603000090", "2606000000", "2602000000")
HS_GRAIN = ("1001990000", "1005900000", "1201901000", "1205109000", "1206009000", "1003900000")
HS_AUTO = ("8708299000", "8708409100", "8708999990", "8708301000", "8407340090", "8408209010", "8409919990",
           "8409999100")
HS_OTHER_I = ("0303890090", "0306171900", "0202300090", "4403990090", "8471300000", "8517130000", "3901100090",
              "7208510000", "2710192200", "3004909099", "8486209000", "2204210000", "8479899990", "4407119000")
HS_OTHER_E = ("1604140090", "0304720000", "6204430000", "6110200045", "4011100000", "7308900000", "8501520000",
              "9403609990", "2905110000", "7210490000", "8483409000", "1605529000", "6402999000", "8716800000")
assert all(len(c) == 10 and c.isdigit() for c in HS_ORE + HS_GRAIN + HS_AUTO + HS_OTHER_I + HS_OTHER_E)

TRADE_MODES = ("0110", "0615", "0214", "1233", "5034")
TRADE_P = (0.74, 0.10, 0.04, 0.07, 0.05)
SCAC = ("COSU", "MSCU", "MAEU", "ONEY", "EGLV", "CMDU", "HLCU", "OOLU", "YMLU", "KMTU", "HDMU", "ZIMU", "PCIU", "SITU")
BULK_BILL = ("VALE", "RTIO", "BHPB", "FMGL", "CARG", "ADMB", "BNGE", "LDCB")
RAIL_BILL = "SYRW"
AWB_PREFIX = ("999", "784", "180", "297", "618", "160", "020", "205")
BOX_OWNERS = ("CSNU", "CCLU", "TCNU", "MSKU", "TGHU", "SEGU", "FCIU", "BMOU", "TEMU", "CAIU", "GESU", "TRHU", "OOCU",
              "EGSU", "ONEU", "HLXU", "CBHU", "DFSU", "TLLU", "MRKU", "TBJU")
RAIL_IN = (("X9018", 6.0), ("X9020", 9.5), ("X8084", 13.0), ("X9062", 17.0), ("80112", 21.0))
AIR_IN = (("CK264", 2.0), ("CA1052", 8.0), ("KE321", 11.5), ("OZ323", 14.0), ("CZ6081", 16.5), ("SU9104", 19.0),
          ("5Y8345", 22.0))
RAIL_OUT = ("X8017", "X8019", "X8083", "80111")
AIR_OUT = ("CK263", "CA1051", "KE322", "OZ324", "CZ6082", "5Y8346")

CHANNEL_NOTES = {
    "7": ("申报成功", "报关单申报成功，等待海关审核", "申报成功,已发送海关"),
    "L": ("海关入库成功", "入库成功，电子审单通过"),
    "E": ("退单：商品编码与申报品名不符", '退单，原因："申报要素"不完整', "退单：随附单证缺失"),
    "C": ("查验通知：请至指定查验场地配合查验", '布控查验,查验类型"人工查验"', "查验通知：机检查验"),
    "H": ("挂起：待补充单证", "挂起，风险核查中"),
    "M": ("重审通过", "重审：已补充单证"),
    "P": ("已放行", "海关已放行，请办理提货手续"),
    "I": ("无纸放行",),
    "K": ("担保放行",),
    "B": ("保证金担保放行",),
    "R": ("已结关", "报关单已结关"),
    "A": ("报关单删除（放行前）",),
    "D": ("报关单删除（放行后）", '放行后删除,原因"退运"'),
}
TAX_NOTES = ("需交税费：关税", "需交税费：进口环节增值税", "需交税费：消费税")

CITIES = (("大连", "210200"), ("沈阳", "210100"), ("营口", "210800"), ("丹东", "210600"), ("锦州", "210700"),
          ("盘锦", "211100"), ("葫芦岛", "211400"), ("鞍山", "210300"), ("辽宁", "210000"), ("北京", "110000"),
          ("上海", "310000"))
CITY_P = (0.36, 0.2, 0.1, 0.05, 0.04, 0.03, 0.03, 0.04, 0.07, 0.04, 0.04)
CORES = ("华信", "恒达", "鑫源", "远洋", "中联", "瑞丰", "宏图", "金桥", "海通", "正泰", "盛世", "永泰", "东方", "北方",
         "新纪元", "万通", "嘉禾", "富港", "华晨", "辽渔", "港湾", "长兴", "鲁辽", "中储", "欧亚", "东北亚")
TRADES = ("国际贸易", "进出口", "国际物流", "汽车零部件", "粮油", "矿业", "水产", "机械设备", "化工", "钢铁", "食品",
          "供应链管理", "电子科技")
SUFFIXES = ("有限公司", "股份有限公司", "有限责任公司")

# ------------------------------------------------------------------------------------- helpers


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _day(d: date) -> int:
    return (d - EPOCH).days


def _date(day: int) -> date:
    return EPOCH + timedelta(days=int(day))


def _ln(rng: np.random.Generator, median_h, sigma: float, n: int, lo: float = 1 / 20, hi: float = 15.0):
    """Lognormal durations in seconds: median (hours, scalar or array), clipped to [lo, hi] x median."""
    med = np.asarray(median_h, dtype=float) * H
    return np.clip(med * np.exp(sigma * rng.standard_normal(n)), med * lo, med * hi)


def _u(rng: np.random.Generator, a: float, b: float, n: int) -> np.ndarray:
    return rng.uniform(a, b, n)


def _imo(six: int) -> str:
    digits = [int(c) for c in f"{six:06d}"]
    return f"{six:06d}{sum(d * (7 - i) for i, d in enumerate(digits)) % 10}"


_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_W = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def _uscc(region: str, rng: np.random.Generator) -> str:
    """Unified social credit code (GB 32100): 91 + region + organisation code (GB 11714) + check."""
    org = "".join(rng.choice(list("0123456789ABCDEFGHJKLMNPQRTUWXY"), 8, p=None))
    vals = [int(c) if c.isdigit() else ord(c) - 55 for c in org]
    c9 = 11 - sum(v * w for v, w in zip(vals, (3, 7, 9, 10, 5, 8, 4, 2))) % 11
    body = "91" + region + org + ("X" if c9 == 10 else "0" if c9 == 11 else str(c9))
    s = sum(_USCC_CHARS.index(c) * w for c, w in zip(body, _USCC_W))
    return body + _USCC_CHARS[(31 - s % 31) % 31]


def _reduce(fn, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    if len(starts) == 0:
        return np.empty(0)
    return fn.reduceat(values, starts)


def _null_empty(col: str) -> pl.Expr:
    return pl.when(pl.col(col) == "").then(None).otherwise(pl.col(col)).alias(col)


# ----------------------------------------------------------------------------------------- world


@dataclass
class _World:
    seed: int
    scale: float
    quirks: frozenset[str]
    start_day: int
    end_day: int
    box_vessels: np.ndarray = field(init=False)
    bulk_vessels: np.ndarray = field(init=False)
    owner_code: np.ndarray = field(init=False)
    owner_name: np.ndarray = field(init=False)
    owner_p: np.ndarray = field(init=False)
    counters: dict = field(default_factory=dict)
    bill_counter: int = 0
    box_counter: int = 0
    bill_off: int = 0
    box_off: int = 0
    calls: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = _rng(self.seed, _T_WORLD)
        imos = r.choice(np.arange(900000, 990000), 800, replace=False)
        self.box_vessels = np.array([_imo(int(x)) for x in imos[:560]])
        self.bulk_vessels = np.array([_imo(int(x)) for x in imos[560:]])
        n = 4000
        cities = r.choice(len(CITIES), n, p=CITY_P)
        codes, names = [], []
        for i in range(n):
            city, region = CITIES[cities[i]]
            core, trade = CORES[r.integers(len(CORES))], TRADES[r.integers(len(TRADES))]
            name = city + core + trade + SUFFIXES[r.integers(len(SUFFIXES))]
            u = r.random()
            if u < 0.03:  # names that exercise CSV quoting
                name += ",保税区分公司"
            elif u < 0.05:
                name = f'{city}"{CORES[r.integers(len(CORES))]}"{TRADES[r.integers(len(TRADES))]}有限公司'
            codes.append(_uscc(region, r))
            names.append(name)
        self.owner_code, self.owner_name = np.array(codes), np.array(names)
        w = 1.0 / (np.arange(n) + 15.0)  # a few big traders, a long tail of small ones
        self.owner_p = w / w.sum()
        self.bill_off = int(r.integers(10**9, 9 * 10**9))
        self.box_off = int(r.integers(10**5, 9 * 10**5))

    def q(self, name: str) -> bool:
        return name in self.quirks

    def calls_for_day(self, day: int) -> dict[str, np.ndarray]:
        """Container vessel calls arriving at the sea ports on `day` (its own random stream)."""
        if day in self.calls:
            return self.calls[day]
        r = _rng(self.seed, _T_CALLS, day)
        counts = np.maximum(1, r.poisson(CALL_RATE * self.scale))
        port = np.repeat(np.arange(len(SEA_PORTS)), counts)
        n = len(port)
        pool = self.box_vessels
        vessel = pool[r.choice(len(pool), n, replace=n > len(pool))]
        d = _date(day)
        voyage = np.array([f"{d.year % 100:02d}{d.timetuple().tm_yday:03d}{x}" for x in r.choice(list("ENWS"), n)])
        arrive = day * DAY + r.uniform(0, DAY, n)
        has_anch = r.random(n) < ANCH_SHARE[port]
        wait = _ln(r, 4.0, 1.0, n, lo=0.08, hi=30)
        service = np.clip(14 * H * np.exp(0.45 * r.standard_normal(n)), 5 * H, 60 * H)
        berth = np.where(has_anch, arrive + wait, arrive)
        pcode = np.array(SEA_PORTS)[port]
        if self.q("unknown_codes"):
            qr = _rng(self.seed, _T_CALLS, day, 1)
            pcode = np.where((port == P["YKP"]) & (qr.random(n) < 0.03), UNKNOWN_PORT, pcode)
        out = {
            "port": port, "pcode": pcode, "vessel": vessel, "voyage": voyage,
            "anch": np.where(has_anch, arrive, np.nan), "berth": berth, "atd": berth + service,
        }
        self.calls[day] = out
        for old in [k for k in self.calls if k < day - 40]:
            del self.calls[old]
        return out


def _concat_calls(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ------------------------------------------------------------------------------ chunk generation


@dataclass
class _Events:
    """Accumulates (index, code, time[, extra]) event arrays."""

    idx: list = field(default_factory=list)
    code: list = field(default_factory=list)
    t: list = field(default_factory=list)
    extra: list = field(default_factory=list)

    def add(self, idx, code, t, extra=None) -> None:
        idx = np.asarray(idx)
        if len(idx) == 0:
            return
        self.idx.append(idx)
        self.code.append(np.broadcast_to(np.asarray(code, dtype=object), idx.shape).astype(str))
        self.t.append(np.asarray(t, dtype=float))
        self.extra.append(np.full(len(idx), -1) if extra is None else np.asarray(extra))

    def arrays(self):
        if not self.idx:
            return np.empty(0, int), np.empty(0, str), np.empty(0), np.empty(0, int)
        return (np.concatenate(self.idx), np.concatenate(self.code), np.concatenate(self.t),
                np.concatenate(self.extra))


def _gen_chunk(w: _World, first_day: int, last_day: int) -> dict[str, pl.DataFrame]:
    """All rows of the shipments arriving on days [first_day, last_day), with transmit day `_tx`."""
    rng = _rng(w.seed, _T_CHUNK, first_day)
    days = np.arange(first_day, last_day)
    nd = len(days)

    # ---- shipments
    lam = F_RATE[:, None] * w.scale * WEEKDAY[(days[None, :] + 3) % 7]
    counts = rng.poisson(lam)  # flows x days
    flow = np.repeat(np.repeat(np.arange(len(FLOWS)), nd), counts.ravel())
    day = np.repeat(np.tile(days, len(FLOWS)), counts.ravel())
    n = len(flow)
    port, imp, mode = F_PORT[flow], F_IMP[flow], F_MODE[flow]
    exp_ = ~imp
    sea = mode == 2
    r = lambda: rng.random(n)  # noqa: E731
    bulk = imp & sea & (r() < BULK_SHARE[port])
    ore = bulk & (r() < ORE_SHARE[port])
    grain = bulk & ~ore
    auto = ~bulk & (r() < np.where(imp, AUTO_SHARE_I[port], AUTO_SHARE_E[port]))
    air = mode == 5
    rail = mode == 3
    boxed = ~(bulk | air)

    hs = np.empty(n, dtype="<U10")
    for mask, codes in ((ore, HS_ORE), (grain, HS_GRAIN), (auto, HS_AUTO), (imp & ~bulk & ~auto, HS_OTHER_I),
                        (exp_ & ~auto, HS_OTHER_E)):
        hs[mask] = np.array(codes)[rng.integers(0, len(codes), mask.sum())]
    trade = np.array(TRADE_MODES)[rng.choice(len(TRADE_MODES), n, p=TRADE_P)]
    trade = np.where(air & exp_ & (r() < 0.2), "9610", trade)
    owner = rng.choice(len(w.owner_code), n, p=w.owner_p)

    # ---- units: containers of a container bill, else one bill-level unit
    n_units = np.where(boxed, rng.choice([1, 2, 3], n, p=[0.25, 0.3, 0.45]), 1)
    us = np.repeat(np.arange(n), n_units)
    nu = len(us)
    ustart = np.cumsum(n_units) - n_units
    upos = np.arange(nu) - ustart[us]
    ubox = boxed[us]
    ru = lambda: rng.random(nu)  # noqa: E731
    uw = np.where(ubox, rng.uniform(3500, 28000, nu), 0.0)
    uw = np.where(ore[us], rng.uniform(40e6, 180e6, nu), uw)
    uw = np.where(grain[us], rng.uniform(25e6, 70e6, nu), uw)
    uw = np.where(air[us], np.clip(300 * np.exp(1.2 * rng.standard_normal(nu)), 5, 20000), uw)
    uw = np.round(uw, 1)
    weight = np.round(np.bincount(us, weights=uw, minlength=n), 1)
    owners_box = rng.integers(0, len(BOX_OWNERS), nu)
    serial = (np.arange(w.box_counter, w.box_counter + nu) * 7919 + w.box_off) % 10**6
    w.box_counter += nu
    box_no = np.full(nu, "", dtype="<U11")
    for k in np.flatnonzero(ubox):
        ten = f"{BOX_OWNERS[owners_box[k]]}{serial[k]:06d}"
        box_no[k] = ten + str(iso6346_check_digit(ten))

    # ---- bill numbers (canonical spelling; unique: a bijective scramble of a running counter)
    num = (np.arange(w.bill_counter, w.bill_counter + n, dtype=np.int64) * 6364136223 + w.bill_off) % 10**10
    w.bill_counter += n
    pre = np.array(SCAC)[rng.integers(0, len(SCAC), n)]
    pre = np.where(bulk, np.array(BULK_BILL)[rng.integers(0, len(BULK_BILL), n)], pre)
    pre = np.where(rail, RAIL_BILL, pre)
    awb = np.array(AWB_PREFIX)[rng.integers(0, len(AWB_PREFIX), n)]
    bill = np.array([
        f"{awb[i]}{num[i] % 10**7:07d}{(num[i] % 10**7) % 7}" if air[i] else f"{pre[i]}{num[i]:010d}"
        for i in range(n)
    ])

    # ---- vessel calls: container calls of these days (owned by this chunk) and bulk calls
    calls = _concat_calls([w.calls_for_day(int(d)) for d in days])
    ccount = len(calls["port"])
    cday = np.repeat(days, [len(w.calls_for_day(int(d))["port"]) for d in days])
    ckey = (cday - first_day) * len(SEA_PORTS) + calls["port"]
    nan = np.full(n, np.nan)
    call = np.full(n, -1)
    m = imp & sea & ~bulk
    skey = (day[m] - first_day) * len(SEA_PORTS) + port[m]
    lo_, hi_ = np.searchsorted(ckey, skey, "left"), np.searchsorted(ckey, skey, "right")
    call[m] = lo_ + np.floor(rng.random(m.sum()) * (hi_ - lo_)).astype(int)

    bidx = np.flatnonzero(bulk)
    bkeys, binv = np.unique((day[bidx] - first_day) * len(SEA_PORTS) + port[bidx], return_inverse=True)
    bsize = np.bincount(binv, minlength=len(bkeys))
    bk = np.maximum(1, np.round(bsize * 0.7)).astype(int)
    boff = np.cumsum(bk) - bk
    nb = int(bk.sum())
    b_port = np.repeat(bkeys % len(SEA_PORTS), bk)
    b_day = np.repeat(bkeys // len(SEA_PORTS) + first_day, bk)
    b_vessel = np.empty(nb, dtype="<U7")
    for g in range(len(bkeys)):
        pool = w.bulk_vessels
        b_vessel[boff[g]:boff[g] + bk[g]] = rng.choice(pool, bk[g], replace=bool(bk[g] > len(pool)))
    b_voy = np.array([f"{_date(d).year % 100:02d}{_date(d).timetuple().tm_yday:03d}{x}"
                      for d, x in zip(b_day, rng.choice(list("ENWS"), nb))])
    b_arr = b_day * DAY + rng.uniform(0, DAY, nb)
    b_has_anch = rng.random(nb) < 0.9
    b_berth = np.where(b_has_anch, b_arr + _ln(rng, 20.0, 1.0, nb, lo=0.05, hi=18), b_arr)
    b_atd = b_berth + np.clip(48 * H * np.exp(0.4 * rng.standard_normal(nb)), 18 * H, 8 * 24 * H)
    call[bidx] = ccount + boff[binv] + np.floor(rng.random(len(bidx)) * bk[binv]).astype(int)
    allc = {
        "port": np.concatenate([calls["port"], b_port]),
        "pcode": np.concatenate([calls["pcode"], np.array(SEA_PORTS)[b_port]]),
        "vessel": np.concatenate([calls["vessel"], b_vessel]),
        "voyage": np.concatenate([calls["voyage"], b_voy]),
        "anch": np.concatenate([calls["anch"], np.where(b_has_anch, b_arr, np.nan)]),
        "berth": np.concatenate([calls["berth"], b_berth]),
        "atd": np.concatenate([calls["atd"], b_atd]),
    }

    pcode = np.array(PORTS)[port].astype("<U3")
    vessel = np.full(n, "", dtype="<U7")
    voyage = np.full(n, "", dtype="<U6")
    anch, berth, atd = nan.copy(), nan.copy(), nan.copy()
    hc = call >= 0
    for name, arr in (("pcode", pcode), ("vessel", vessel), ("voyage", voyage), ("anch", anch), ("berth", berth),
                      ("atd", atd)):
        arr[hc] = allc[name][call[hc]]

    # ---- SHE trains and flights (no vessel call)
    carr = nan.copy()
    for mask, table in ((imp & rail, RAIL_IN), (imp & air, AIR_IN)):
        k = rng.integers(0, len(table), mask.sum())
        hour = np.array([h for _, h in table])[k] + np.clip(rng.normal(0, 0.7, mask.sum()), -2, 2)
        carr[mask] = day[mask] * DAY + np.clip(hour, 0.1, 23.9) * H
        voyage[mask] = np.array([v for v, _ in table])[k]
    for mask, table in ((exp_ & rail, RAIL_OUT), (exp_ & air, AIR_OUT)):
        voyage[mask] = np.array(table)[rng.integers(0, len(table), mask.sum())]

    # ---- flags (every draw over all shipments, so the streams do not depend on the mix)
    is_dp = np.isin(port, [P["DLC"], P["YKP"]])
    adv = r() < F_ADV[flow]
    taxed = r() < np.where(imp, np.where(auto, 0.95, np.where(grain, 0.9, np.where(ore, 0.6, 0.72))), 0.02)
    n_tax = np.where(auto, rng.integers(2, 4, n), np.where(r() < 0.7, 2, 1))
    insp = r() < np.where(imp, np.where(ore, 1.0, np.where(grain, 0.5, 0.04)), 0.025)
    rbi = ore & insp & (r() < 0.7)
    hold = r() < 0.01
    rejected = r() < 0.01
    redeclare = rejected & (r() < 0.6)
    rej_final = rejected & ~redeclare
    cancel = ~rejected & (r() < 0.005)
    cancel_after = cancel & (r() < 0.3)
    cancel_before = cancel & ~cancel_after
    shipside = imp & sea & ~bulk & is_dp & (r() < 0.10) & ~insp & ~hold & ~rej_final & ~cancel
    adv |= shipside
    two_step = imp & sea & (r() < 0.12) & ~rej_final & ~cancel
    ship_e = exp_ & sea & is_dp & (r() < 0.05)

    # ---- import: discharge and arrival
    disc = np.full(nu, np.nan)
    mi = (imp & sea & ~bulk)[us]
    disc[mi] = berth[us[mi]] + (atd - berth)[us[mi]] * (0.05 + 0.9 * rng.beta(1.6, 1.2, mi.sum()))
    mi = bulk[us]
    disc[mi] = berth[us[mi]] + (atd - berth)[us[mi]] * rng.uniform(0.8, 0.97, mi.sum())
    mi = (imp & rail)[us]
    disc[mi] = carr[us[mi]] + _ln(rng, 1.5, 0.5, mi.sum())
    mi = (imp & air)[us]
    disc[mi] = carr[us[mi]] + _ln(rng, 1.0, 0.5, mi.sum())
    first_disc = _reduce(np.fmin, disc, ustart)
    last_disc = _reduce(np.fmax, disc, ustart)

    # ---- export: arrival reports
    hour0 = np.where(r() < 0.75, np.clip(rng.normal(14, 3.5, n), 0.2, 23.9), rng.uniform(0, 24, n))
    t0 = day * DAY + hour0 * H
    ar = np.full(nu, np.nan)
    me = exp_[us]
    ar[me] = t0[us[me]] + (upos[me] > 0) * _ln(rng, 0.5, 0.8, me.sum())
    last_ar = _reduce(np.fmax, ar, ustart)

    # arrival (metrics spec): ATA_ANCH, else ATA_BERTH; no vessel call: first DISC_DONE; export: first ARRIVAL_REPORT
    A = np.where(imp, np.where(sea, np.where(np.isnan(anch), berth, anch), first_disc), t0)
    ref = np.where(imp & ~sea, carr, A)  # manifests precede the vessel / train / flight arrival
    Mt = ref - np.where(imp, np.clip(_ln(rng, 40, 0.7, n), 3 * H, 11 * DAY), np.clip(_ln(rng, 14, 0.6, n), H, 5 * DAY))

    # ---- declaration
    frac = np.where(shipside, _u(rng, 0.2, 0.6, n), np.where(imp, _u(rng, 0.25, 0.97, n), _u(rng, 0.3, 0.97, n)))
    d_adv = np.minimum(Mt + (ref - Mt) * frac, A - 120)
    d_non = A + np.where(imp, np.clip(_ln(rng, 24, 1.0, n), 0.2 * H, 13 * DAY), _ln(rng, 0.25, 0.8, n))
    D = np.where(adv, d_adv, d_non)
    L = D + np.maximum(_ln(rng, np.where(imp, 0.1, 0.08), 0.8, n), 20)
    doc = np.where(imp, _ln(rng, 1.2, 1.1, n), _ln(rng, 0.35, 1.0, n))
    T1 = L + _ln(rng, 0.3, 0.8, n)
    pay = np.where(imp, _ln(rng, 1.5, 1.0, n), _ln(rng, 0.5, 0.8, n))
    C = L + _ln(rng, 0.5, 0.8, n)
    Ht = L + _ln(rng, np.where(imp, 2.0, 1.0), 1.0, n)
    Mtime = Ht + _ln(rng, np.where(imp, 18.0, 10.0), 0.8, n)
    base = np.where(imp, last_disc, last_ar)
    insp_dur = np.where(imp, np.where(ore, _ln(rng, 30, 0.6, n), np.where(grain, _ln(rng, 16, 0.6, n), np.where(
        air, _ln(rng, 6, 0.7, n), _ln(rng, 20, 0.7, n)))), _ln(rng, 4, 0.7, n))
    INSP = np.maximum(C, base) + insp_dur
    rel = np.maximum(L + doc, base + np.where(imp, _ln(rng, 2.0, 1.0, n), _ln(rng, 0.45, 0.9, n)))
    rel = np.where(taxed, np.maximum(rel, T1 + pay), rel)
    rel = np.where(hold, np.maximum(rel, Mtime + _ln(rng, 1.0, 0.8, n)), rel)
    rel = np.where(insp & ~rbi, np.maximum(rel, INSP + _ln(rng, np.where(imp, 1.5, 0.5), 0.8, n)), rel)
    # release before inspection: C, release, then INSP_DONE and CERT_ISSUED
    INSP = np.where(rbi, rel + _ln(rng, 28, 0.6, n), INSP)
    CERT = INSP + _ln(rng, 96, 0.5, n, hi=5)
    C = np.where(rbi, L + (rel - L) * _u(rng, 0.1, 0.6, n), C)
    # ship-side pickup: released right after berthing, before discharge completes
    rel_ss = np.maximum(berth + _ln(rng, 0.8, 0.5, n), L + _ln(rng, 0.3, 0.6, n))
    rel_ss = np.where(taxed, np.maximum(rel_ss, T1 + _ln(rng, 0.5, 0.6, n)), rel_ss)
    with np.errstate(invalid="ignore"):
        shipside &= rel_ss < atd - 2 * H
    rel = np.where(shipside, rel_ss, rel)
    mi = shipside[us]
    disc[mi] = rel[us[mi]] + (atd - rel)[us[mi]] * rng.uniform(0.05, 0.7, mi.sum())
    last_disc = _reduce(np.fmax, disc, ustart)
    rcode = np.array(["P", "I", "K", "B"])[rng.choice(4, n, p=[0.8, 0.12, 0.04, 0.04])]

    # ---- export loading
    loaded = np.full(nu, np.nan)
    es = np.flatnonzero(exp_ & sea)
    if len(es):
        cdays = range(max(w.start_day, first_day - 2), last_day + 10)
        cand = _concat_calls([w.calls_for_day(d) for d in cdays])
        for pi in range(len(SEA_PORTS)):
            sel = es[port[es] == pi]
            if not len(sel):
                continue
            cm = np.flatnonzero(cand["port"] == pi)
            cm = cm[np.argsort(cand["atd"][cm], kind="stable")]
            catd = cand["atd"][cm]
            k = np.searchsorted(catd, rel[sel] + 2 * H) + np.minimum(rng.geometric(0.6, len(sel)) - 1, 2)
            k = np.minimum(k, len(cm) - 1)
            c = cm[k]
            for name, arr in (("pcode", pcode), ("vessel", vessel), ("voyage", voyage), ("berth", berth),
                              ("atd", atd)):
                arr[sel] = cand[name][c]
    lstart = np.maximum(rel + 0.5 * H, berth)
    window = atd - 0.3 * H - lstart
    me = (exp_ & sea)[us]
    ok = window[us[me]] > 0
    lt = np.where(ok, lstart[us[me]] + rng.random(me.sum()) * np.where(ok, window[us[me]], 0),
                  rel[us[me]] + _ln(rng, 6, 0.6, me.sum()))
    loaded[me] = lt
    dep = rel + _ln(rng, 6, 0.6, n)
    me = (exp_ & rail)[us]
    loaded[me] = np.maximum(rel[us[me]] + 300, dep[us[me]] - rng.uniform(0, 1800, me.sum()))
    me = (exp_ & air)[us]
    loaded[me] = rel[us[me]] + _ln(rng, 4, 0.6, me.sum())
    last_loaded = _reduce(np.fmax, loaded, ustart)

    R = np.where(imp, rel + _ln(rng, 40, 0.8, n), np.fmax(rel, last_loaded) + _ln(rng, 16, 0.7, n))
    D2 = rel + np.clip(_ln(rng, 72, 0.6, n), 2 * H, 13.5 * DAY)

    # ---- endings: rejection, cancellation
    E_t = np.where(r() < 0.5, D + (L - D) * _u(rng, 0.3, 0.9, n), L + _ln(rng, 3, 1.0, n))
    A_t = L + (np.maximum(rel, L + 600) - L) * _u(rng, 0.2, 0.9, n)
    Dc_t = rel + _ln(rng, 20, 1.0, n)
    end_t = np.where(rej_final, E_t, np.where(cancel_before, A_t, np.where(cancel_after, Dc_t, np.inf)))
    not_released = rej_final | cancel_before

    # ---- declarations: the real one per shipment, plus the rejected first attempt of a re-declaration
    G = np.flatnonzero(redeclare)
    ng = len(G)
    lag = _ln(rng, 6, 0.8, ng) + _ln(rng, 1.5, 0.8, ng)
    Dg = D[G] - lag
    Dg = np.where(Dg < Mt[G] + 300, Mt[G] + (D[G] - Mt[G]) * _u(rng, 0.05, 0.3, ng), Dg)
    Eg = Dg + (D[G] - Dg) * _u(rng, 0.3, 0.8, ng)
    Lg = Dg + (Eg - Dg) * _u(rng, 0.2, 0.6, ng)
    has_Lg = rng.random(ng) < 0.5

    dship = np.concatenate([np.arange(n), G])
    dD = np.concatenate([D, Dg])
    nd_ = len(dship)
    office = np.array([PORT_OFFICE[p] for p in pcode]) if n else np.empty(0, "<U4")
    dcm = office[dship]
    if w.q("unknown_codes"):
        qr = _rng(w.seed, _T_QUIRK + QUIRKS.index("unknown_codes"), first_day, 99)
        dcm = np.where((port[dship] == P["DDG"]) & (qr.random(nd_) < 0.02), UNKNOWN_OFFICE, dcm)
    dflag = np.where(imp[dship], "1", "0")
    dyear = (dD.astype("datetime64[s]").astype("datetime64[Y]").astype(int) + 1970) if nd_ else np.empty(0, int)
    seq = np.zeros(nd_, dtype=np.int64)
    order = np.lexsort((dD, dflag, dyear, dcm))
    gkeys = list(zip(dcm[order], dyear[order], dflag[order]))
    start_date = _date(w.start_day)
    i = 0
    while i < nd_:
        j = i
        key = gkeys[i]
        while j < nd_ and gkeys[j] == key:
            j += 1
        ckey_ = (str(key[0]), int(key[1]), str(key[2]))
        if ckey_ not in w.counters:
            w.counters[ckey_] = 1 + (start_date.timetuple().tm_yday - 1) * 1500 if ckey_[1] == start_date.year else 1
        seq[order[i:j]] = w.counters[ckey_] + np.arange(j - i)
        w.counters[ckey_] += j - i
        i = j
    entry = np.array([f"{c}{y}{f}{s:09d}" for c, y, f, s in zip(dcm, dyear, dflag, seq)])
    dadv = np.where(dD < A[dship], "Y", "N")

    # ---- receipts
    rc = _Events()
    nidx = np.arange(n)
    gidx = n + np.arange(ng)
    rc.add(np.arange(nd_), "7", dD + rng.uniform(1, 60, nd_))
    rc.add(nidx, "L", L)
    rc.add(gidx[has_Lg], "L", Lg[has_Lg])
    rc.add(gidx, "E", Eg)
    rc.add(nidx[rej_final], "E", E_t[rej_final])
    ts = np.repeat(nidx[taxed], n_tax[taxed])
    tk = np.arange(len(ts)) - np.repeat(np.cumsum(n_tax[taxed]) - n_tax[taxed], n_tax[taxed])
    rc.add(ts, "T", T1[ts] + tk * rng.uniform(1, 40, len(ts)), extra=tk)
    rc.add(nidx[insp], "C", C[insp])
    rc.add(nidx[hold], "H", Ht[hold])
    rc.add(nidx[hold], "M", Mtime[hold])
    rel_ok = ~not_released
    rc.add(nidx[rel_ok], rcode[rel_ok], rel[rel_ok])
    r_ok = rel_ok & ~cancel_after
    rc.add(nidx[r_ok], "R", R[r_ok])
    rc.add(nidx[cancel_before], "A", A_t[cancel_before])
    rc.add(nidx[cancel_after], "D", Dc_t[cancel_after])
    rc.add(nidx[two_step], "7", D2[two_step] + rng.uniform(1, 60, two_step.sum()))
    rc.add(nidx[two_step], "L", D2[two_step] + _ln(rng, 0.1, 0.8, two_step.sum()))
    r_idx, r_code, r_t, r_extra = rc.arrays()
    terminal = np.isin(r_code, ["E", "A", "D"])
    keep = terminal | (r_idx >= n) | (r_t < end_t[np.minimum(r_idx, n - 1)] if n else True)
    r_idx, r_code, r_t, r_extra = r_idx[keep], r_code[keep], r_t[keep], r_extra[keep]
    note = np.empty(len(r_idx), dtype=object)
    for ch, notes in CHANNEL_NOTES.items():
        mm = r_code == ch
        note[mm] = np.array(notes)[rng.integers(0, len(notes), mm.sum())]
    mm = r_code == "T"
    note[mm] = np.array(TAX_NOTES)[np.clip(r_extra[mm], 0, 2)]
    note = note.astype(str)

    # ---- cargo events
    ce = _Events()
    uidx = np.arange(nu)
    ui = imp[us]
    ce.add(uidx[ui], "DISC_DONE", disc[ui])
    ce.add(uidx[ui], "TALLY", disc[ui] + _ln(rng, 0.5, 0.6, ui.sum()))
    mb = bulk[us]
    ce.add(uidx[mb], "WEIGHT_DONE", disc[mb] + _ln(rng, 8, 0.5, mb.sum()))
    gbase = np.maximum(rel[us], disc)
    gbase = np.where((insp & ~rbi)[us], np.maximum(gbase, INSP[us]), gbase)
    gate = gbase + np.where(ubox, _ln(rng, 12, 1.0, nu) + (ru() < 0.05) * _ln(rng, 100, 0.6, nu),
                            np.where(bulk[us], _ln(rng, 30, 0.7, nu), _ln(rng, 3, 0.8, nu)))
    gate = np.where(shipside[us], disc + _ln(rng, 0.6, 0.5, nu), gate)
    mg = ui & ~not_released[us]
    ce.add(uidx[mg], "GATE_OUT", gate[mg])
    ue = exp_[us]
    ce.add(uidx[ue], "ARRIVAL_REPORT", ar[ue])
    ml = ue & ~not_released[us] & ~cancel_after[us]
    ce.add(uidx[ml], "LOADED", loaded[ml])
    ce.add(uidx[ml], "TALLY", loaded[ml] + _ln(rng, 0.3, 0.6, ml.sum()))
    # inspection: every container of an inspected container bill, else one bill-level event;
    # the last INSP_DONE of the bill is the inspection time
    mins = (insp & ~not_released)[us]
    room = np.minimum(H, np.maximum(INSP - C, 0) / 2)[us]
    ce.add(uidx[mins], "INSP_DONE", INSP[us[mins]] - (upos[mins] > 0) * room[mins] * ru()[mins])
    mc = (rbi & ~not_released)[us] & (upos == 0)
    ce.add(uidx[mc], "CERT_ISSUED", CERT[us[mc]])
    c_unit, c_code, c_t, _ = ce.arrays()

    # ---- vessel events (calls owned by this chunk: container calls of these days and bulk calls)
    ve = _Events()
    ncall = len(allc["port"])
    cidx = np.arange(ncall)
    ha = ~np.isnan(allc["anch"])
    ve.add(cidx[ha], "ATA_ANCH", allc["anch"][ha])
    ve.add(cidx, "ATA_BERTH", allc["berth"])
    ve.add(cidx, "ATD_BERTH", allc["atd"])
    v_idx, v_code, v_t, _ = ve.arrays()

    # ---------------------------------------------------------------- frames
    ship = pl.DataFrame({
        # rail, road and air consignments carry no vessel and no voyage (the train or flight is not exported)
        "PORT_CODE": pcode, "VESSEL_ID": vessel, "VOYAGE_NO": np.where(sea, voyage, ""), "BILL_NO": bill,
        "I_E_FLAG": np.where(imp, "I", "E"), "I_E_PORT": office, "TRADE_MODE": trade,
        "TRAF_MODE": mode.astype(str), "OWNER_CODE": w.owner_code[owner], "OWNER_NAME": w.owner_name[owner],
        "MAIN_CODE_TS": hs,
    }, schema={c: pl.String for c in ("PORT_CODE", "VESSEL_ID", "VOYAGE_NO", "BILL_NO", "I_E_FLAG", "I_E_PORT",
                                      "TRADE_MODE", "TRAF_MODE", "OWNER_CODE", "OWNER_NAME", "MAIN_CODE_TS")})

    # dec_head: version 1 of every declaration, version 2 of two-step declarations
    two = np.flatnonzero(two_step)
    h_decl = np.concatenate([np.arange(nd_), two])
    h_ship = dship[h_decl]
    h_D = np.concatenate([dD, D2[two]])
    h_upd = h_D + rng.uniform(2, 90, len(h_D))
    h_step = np.concatenate([np.where(two_step[dship] & (np.arange(nd_) < n), "1", ""), np.full(len(two), "2")])
    h_wt = weight[h_ship] * np.concatenate([np.ones(nd_), np.where(rng.random(len(two)) < 0.3,
                                                                    1 + rng.uniform(-0.01, 0.01, len(two)), 1)])
    real = h_decl < n
    dec_head = ship[h_ship].with_columns(
        pl.Series("ENTRY_ID", entry[h_decl]), pl.Series("CUSTOM_MASTER", dcm[h_decl]),
        pl.Series("UPDATE_TIME", h_upd.astype(np.int64)), pl.Series("D_DATE", h_D.astype(np.int64)),
        pl.Series("DECL_STEP", h_step), pl.Series("ADVANCE", dadv[h_decl]),
        pl.Series("SHIPSIDE", np.where(real & (shipside | ship_e)[h_ship], "Y", "N")),
        pl.Series("RBI", np.where(real & rbi[h_ship], "Y", "N")),
        pl.Series("GROSS_WT", np.round(h_wt, 1)),
        pl.Series("_first", (np.arange(len(h_decl)) < nd_).astype(np.int8)),
        pl.Series("_last", (~(two_step[h_ship] & real & (h_step == "1"))).astype(np.int8)),
    ).select(*KINDS["dec_head"].columns, "_first", "_last")
    dec_head = dec_head.with_columns(
        _null_empty("DECL_STEP"), _null_empty("VESSEL_ID"), _null_empty("VOYAGE_NO"), pl.col("UPDATE_TIME").alias("_t"))

    dec_result = pl.DataFrame({
        "ENTRY_ID": entry[r_idx], "CHANNEL": r_code, "NOTICE_DATE": r_t.astype(np.int64),
        "CUSTOM_MASTER": dcm[r_idx], "NOTE": note,
    }, schema={"ENTRY_ID": pl.String, "CHANNEL": pl.String, "NOTICE_DATE": pl.Int64, "CUSTOM_MASTER": pl.String,
               "NOTE": pl.String}).with_columns(pl.col("NOTICE_DATE").alias("_t"))

    unit = pl.DataFrame({"CONTAINER_NO": box_no}, schema={"CONTAINER_NO": pl.String}).with_columns(
        _null_empty("CONTAINER_NO"))
    # a bill's manifest is one message: every line of it has the message's UPDATE_TIME (the draw is kept so
    # the random streams after it stay as they were)
    rng.uniform(0, 5, nu)
    m_time = Mt[us].astype(np.int64)
    manifest = pl.concat([ship[us].select("VESSEL_ID", "VOYAGE_NO", "PORT_CODE", "BILL_NO"), unit], how="horizontal")
    manifest = manifest.with_columns(
        pl.Series("GROSS_WT", uw), pl.Series("UPDATE_TIME", m_time), pl.Series("_lim", A[us].astype(np.int64)),
    ).with_columns(_null_empty("VESSEL_ID"), _null_empty("VOYAGE_NO"), pl.col("UPDATE_TIME").alias("_t"))

    c_ship = us[c_unit]
    bill_level = ~ubox[c_unit]
    cargo = pl.concat([ship[c_ship].select("VESSEL_ID", "VOYAGE_NO", "PORT_CODE", "BILL_NO"), unit[c_unit]],
                      how="horizontal")
    cargo = cargo.with_columns(
        pl.Series("EVENT_CODE", c_code), pl.Series("EVENT_TIME", c_t.astype(np.int64)),
        pl.Series("_bl", bill_level),
    ).with_columns(
        pl.when(pl.col("_bl") | pl.col("EVENT_CODE").is_in(["CERT_ISSUED"])).then(None)
        .otherwise(pl.col("CONTAINER_NO")).alias("CONTAINER_NO"),
        _null_empty("VESSEL_ID"), _null_empty("VOYAGE_NO"), pl.col("EVENT_TIME").alias("_t"),
    ).drop("_bl").select(*KINDS["cargo_event"].columns, "_t")

    vessel_event = pl.DataFrame({
        "VESSEL_ID": allc["vessel"][v_idx], "VOYAGE_NO": allc["voyage"][v_idx], "PORT_CODE": allc["pcode"][v_idx],
        "EVENT_CODE": v_code, "EVENT_TIME": v_t.astype(np.int64),
        "SOURCE": np.where(v_code == "ATA_ANCH", "CSM004", np.char.add("PCS-", allc["pcode"][v_idx].astype(str))),
    }, schema={"VESSEL_ID": pl.String, "VOYAGE_NO": pl.String, "PORT_CODE": pl.String, "EVENT_CODE": pl.String,
               "EVENT_TIME": pl.Int64, "SOURCE": pl.String}).with_columns(pl.col("EVENT_TIME").alias("_t"))

    frames = {"dec_head": dec_head, "dec_result": dec_result, "manifest": manifest, "vessel_event": vessel_event,
              "cargo_event": cargo}
    return _row_quirks(w, first_day, frames)


# ------------------------------------------------------------------------------ row-level quirks


def _versions(frame: pl.DataFrame, r: np.random.Generator, kind: str) -> pl.DataFrame:
    """Re-send some declarations, and some bills' whole manifests, with a later UPDATE_TIME and a corrected
    GROSS_WT (the latest version wins; a manifest version is the bill's whole container list)."""
    h = frame.height
    if kind == "dec_head":
        pick = np.flatnonzero((frame["_last"].to_numpy() == 1) & (r.random(h) < 0.03))
        new_t = frame["UPDATE_TIME"].to_numpy()[pick] + _ln(r, 6, 1.0, len(pick), lo=0.01, hi=40).astype(np.int64)
    else:
        bill = frame["BILL_NO"].str.replace_all(r"[\s\u3000\u00a0\-\uff0d]", "").str.to_uppercase().to_numpy()
        bills, of_bill = np.unique(bill, return_inverse=True)
        pick = np.flatnonzero((r.random(len(bills)) < 0.03)[of_bill])
        old = frame["UPDATE_TIME"].to_numpy()[pick]
        lim = frame["_lim"].to_numpy()[pick]
        new_t = old + ((lim - old) * r.uniform(0.2, 0.9, len(bills))[of_bill[pick]]).astype(np.int64)
    if not len(pick):
        return frame
    factor = 1 + r.choice([-1, 1], len(pick)) * r.uniform(0.005, 0.05, len(pick))
    extra = frame[pick].with_columns(
        pl.Series("UPDATE_TIME", new_t), pl.Series("_t", new_t),
        (pl.col("GROSS_WT") * pl.Series(factor)).round(1).alias("GROSS_WT"),
    )
    if kind == "dec_head":
        extra = extra.with_columns(pl.lit(0, pl.Int8).alias("_first"))
    return pl.concat([frame, extra])


def _bill_variants(frame: pl.DataFrame, r: np.random.Generator) -> pl.DataFrame:
    """Hand-keyed bill numbers: case, surrounding blanks, a stray '-' or space."""
    v = np.where(r.random(frame.height) < 0.1, r.integers(1, 6, frame.height), 0)
    b = pl.col("BILL_NO")
    head, tail = b.str.slice(0, 4), b.str.slice(4)
    expr = (pl.when(pl.col("_bv") == 1).then(b.str.to_lowercase())
            .when(pl.col("_bv") == 2).then(pl.concat_str([head, pl.lit(" "), tail]))
            .when(pl.col("_bv") == 3).then(pl.concat_str([head, pl.lit("-"), tail]))
            .when(pl.col("_bv") == 4).then(pl.concat_str([pl.lit(" "), b, pl.lit(" ")]))
            .when(pl.col("_bv") == 5).then(pl.concat_str([head.str.to_lowercase(), pl.lit(" "), tail]))
            .otherwise(b))
    return frame.with_columns(pl.Series("_bv", v)).with_columns(expr.alias("BILL_NO")).drop("_bv")


def _row_quirks(w: _World, first_day: int, frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    out = {}
    for ki, kind in enumerate(KIND_ORDER):
        f = frames[kind]
        qr = lambda q: _rng(w.seed, _T_QUIRK + QUIRKS.index(q), first_day, ki)  # noqa: E731
        h = f.height
        f = f.with_columns(
            pl.Series("_seq", (first_day * 10**9 + ki * 10**8 + np.arange(h)).astype(np.int64)),
            (pl.col("_t") // DAY).cast(pl.Int32).alias("_tx"),
        )
        if w.q("time_formats"):
            p = [0.6, 0.2, 0.2] if kind == "dec_result" else [0.75, 0.25, 0.0]
            fmt = qr("time_formats").choice(3, h, p=p).astype(np.int8)
        else:
            fmt = np.zeros(h, np.int8)
        f = f.with_columns(pl.Series("_fmt", fmt), pl.Series("_ms", _rng(w.seed, _T_QUIRK + 50, first_day, ki)
                                                             .integers(0, 1000, h).astype(np.int16)))
        if "_first" not in f.columns:
            f = f.with_columns(pl.lit(0, pl.Int8).alias("_first"))
        if w.q("bill_variants") and "BILL_NO" in f.columns:
            f = _bill_variants(f, qr("bill_variants"))
        if w.q("versions") and kind in ("dec_head", "manifest"):
            f = _versions(f, qr("versions"), kind)
            f = f.with_columns((pl.col("_t") // DAY).cast(pl.Int32).alias("_tx"))
        f = f.drop([c for c in ("_last", "_lim") if c in f.columns])
        h = f.height
        tx = f["_tx"].to_numpy().copy()
        if w.q("shuffle") and kind == "dec_head":  # the header a day after its first receipts
            tx += ((f["_first"].to_numpy() == 1) & (qr("shuffle").random(h) < 0.005)).astype(np.int32)
        if w.q("late"):
            lr = qr("late")
            late = lr.random(h) < 0.015
            tx += np.where(late, 1 + np.minimum(29, np.floor(lr.exponential(3.0, h))), 0).astype(np.int32)
        f = f.with_columns(pl.Series("_tx", tx.astype(np.int32)))
        if w.q("duplicates"):
            dr = qr("duplicates")
            u = dr.random(h)
            later = np.flatnonzero(u < 0.01)
            same = np.flatnonzero(u > 0.999)
            shift = (1 + np.minimum(dr.geometric(0.5, len(later)) - 1, 8)).astype(np.int32)
            f = pl.concat([
                f,
                f[later].with_columns((pl.col("_tx") + pl.Series(shift)).alias("_tx"),
                                      pl.lit(0, pl.Int8).alias("_first")),
                f[same].with_columns(pl.lit(0, pl.Int8).alias("_first")),
            ])
        f = f.with_columns(pl.max_horizontal(pl.col("_tx"), pl.lit(w.start_day, pl.Int32)).alias("_tx"))
        out[kind] = f.filter(pl.col("_tx") < w.end_day)
    return out


# ------------------------------------------------------------------------------------- delivery

_BAD_TIMES = ("{y}-13-45 08:15:00", "N/A", "{y}/{m}/{d} 8:15", "{y}{m}{d}", "0000-00-00 00:00:00",
              "{y}-{m}-{d} 25:61:00", "{d}.{m}.{y}")
_BAD_CODES = {
    "I_E_FLAG": ("X", "0", "IE"), "TRAF_MODE": ("9", "0", "W"), "CHANNEL": ("9", "X", "Z"),
    "EVENT_CODE": ("GATE_IN", "DISCHARGED", "ETA_BERTH", "ARRIVAL"),
}
_EXTRA_COLUMNS = ("REMARK", "BATCH_NO", "SRC_SYS", "MSG_ID")


def _format_times(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    exprs = []
    for col in columns:
        dt = pl.from_epoch(pl.col(col), time_unit="s")
        compact = pl.concat_str([dt.dt.strftime("%Y%m%d%H%M%S"), pl.col("_ms").cast(pl.String).str.zfill(3)])
        exprs.append(pl.when(pl.col("_fmt") == 0).then(dt.dt.strftime("%Y-%m-%d %H:%M:%S"))
                     .when(pl.col("_fmt") == 1).then(dt.dt.strftime("%Y-%m-%dT%H:%M:%S"))
                     .otherwise(compact).alias(col))
    return frame.with_columns(exprs)


def _fmt_one(t: int, fmt: int, ms: int) -> str:
    dt = _date(t // DAY)
    s = t % DAY
    hms = f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
    if fmt == 1:
        return f"{dt:%Y-%m-%d}T{hms}"
    if fmt == 2:
        return f"{dt:%Y%m%d}{hms.replace(':', '')}{ms:03d}"
    return f"{dt:%Y-%m-%d} {hms}"


def _corrupt(rows: list[dict], kind: str, day: int, r: np.random.Generator) -> list[dict]:
    """Quirk 7: make each row bad in one of the ways a kind can be bad."""
    spec = KINDS[kind]
    d = _date(day)
    for row in rows:
        options = ["fields", "time", "future"]
        if "ENTRY_ID" in row:
            options.append("entry_id")
        options += [c for c in _BAD_CODES if c in row]
        if row.get("CONTAINER_NO"):
            options.append("container")
        how = options[r.integers(len(options))]
        col = spec.times[r.integers(len(spec.times))]
        if how == "fields":
            row["_badf"] = 1 if r.random() < 0.5 else -1
        elif how == "time":
            row[col] = _BAD_TIMES[r.integers(len(_BAD_TIMES))].format(y=d.year, m=f"{d.month:02d}", d=f"{d.day:02d}")
        elif how == "future":
            t = (day + 2 + int(r.integers(0, 30))) * DAY + int(r.integers(0, DAY))
            row[col] = _fmt_one(t, int(row["_fmt"]), int(row["_ms"]))
        elif how == "entry_id":
            e = row["ENTRY_ID"]
            row["ENTRY_ID"] = (e[:-1], e[:9] + "X" + e[10:], e[:4] + "19" + e[6:], e + "0")[r.integers(4)]
        elif how == "container":
            c = row["CONTAINER_NO"]
            row["CONTAINER_NO"] = c[:10] + str((int(c[10]) + 1 + int(r.integers(9))) % 10)
        else:
            choices = _BAD_CODES[how]
            row[how] = choices[r.integers(len(choices))]
    return rows


def _mangle_fields(data: bytes, encoding: str, lines_to_fix: dict[int, int], r: np.random.Generator) -> bytes:
    """Wrong number of fields: drop the last field or add one (no field contains a line break)."""
    lines = data.split(b"\r\n")
    for li, sign in sorted(lines_to_fix.items()):
        fields = next(csv.reader([lines[li].decode(encoding)]))
        if sign < 0 and len(fields) > 2:
            fields = fields[:-1]
        else:
            fields.append(("1", "备注", "X")[r.integers(3)])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(fields)
        lines[li] = buf.getvalue().encode(encoding)
    return b"\r\n".join(lines)


def _empty_frame(kind: str) -> pl.DataFrame:
    spec = KINDS[kind]
    schema = {c: (pl.Int64 if c in spec.times else pl.Float64 if c == "GROSS_WT" else pl.String) for c in spec.columns}
    schema.update({"_t": pl.Int64, "_seq": pl.Int64, "_tx": pl.Int32, "_fmt": pl.Int8, "_ms": pl.Int16,
                   "_first": pl.Int8})
    return pl.DataFrame(schema=schema)


def _deliver(w: _World, inbox: Path, day: int, parts: dict[str, list[pl.DataFrame]],
             breaks: dict[str, str]) -> tuple[Path, int, int]:
    ds = _date(day).isoformat()
    folder = inbox / ds
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    for old in folder.iterdir():  # a rerun rewrites the delivery
        m = DATA_FILE_PATTERN.match(old.name)
        if m and m["date"] == ds.replace("-", ""):
            old.unlink()
    frames = {}
    for kind in KIND_ORDER:
        fs = parts.get(kind) or []
        f = pl.concat(fs, how="vertical_relaxed") if fs else _empty_frame(kind)
        frames[kind] = f.select([c for c in _empty_frame(kind).columns])

    # bad rows: ~0.1% of rows, at most 0.4% of a file (none in files under 250 rows)
    nbad = {k: 0 for k in KIND_ORDER}
    if w.q("bad_rows"):
        br = _rng(w.seed, _T_DELIVERY, day, 99)
        for kind in KIND_ORDER:
            hgt = frames[kind].height
            nbad[kind] = min(int(br.binomial(hgt, 0.001)), hgt * 4 // 1000)
        biggest = max(KIND_ORDER, key=lambda k: frames[k].height)
        if sum(nbad.values()) == 0 and frames[biggest].height >= 250:
            nbad[biggest] = 1

    entries, nrows, ndecl = [], 0, 0
    for ki, kind in enumerate(KIND_ORDER):
        spec = KINDS[kind]
        r = _rng(w.seed, _T_DELIVERY, day, ki)
        f = _format_times(frames[kind], spec.times).with_columns(pl.lit(0, pl.Int8).alias("_badf"))
        if "GROSS_WT" in spec.columns:
            f = f.with_columns(pl.col("GROSS_WT").round(1).cast(pl.String))
        if kind == "dec_head":
            ndecl = int(f["_first"].sum())
        if nbad[kind]:
            pick = np.sort(r.choice(f.height, nbad[kind], replace=False))
            mask = np.zeros(f.height, bool)
            mask[pick] = True
            bad = pl.DataFrame(_corrupt(f[pick].to_dicts(), kind, day, r), schema=f.schema)
            f = pl.concat([f.filter(pl.Series(~mask)), bad])
        if w.q("shuffle"):
            f = f[r.permutation(f.height)]
        else:
            f = f.sort(["_t", "_seq"], maintain_order=True)
        columns = list(spec.columns)
        if w.q("layout"):
            if r.random() < 0.3:
                columns = [columns[i] for i in r.permutation(len(columns))]
            if r.random() < 0.15:
                extra = _EXTRA_COLUMNS[r.integers(len(_EXTRA_COLUMNS))]
                columns.insert(int(r.integers(len(columns) + 1)), extra)
                value = {"REMARK": pl.lit(None, pl.String), "BATCH_NO": pl.lit(f"{ds.replace('-', '')}01"),
                         "SRC_SYS": pl.lit("SWEXP" if spec.encoding == "gb18030" else "PCS"),
                         "MSG_ID": pl.concat_str([pl.lit("M"), pl.col("_seq").cast(pl.String)])}[extra]
                f = f.with_columns(value.alias(extra))
        badf = f["_badf"].to_numpy()
        out = f.select(columns)
        nparts = 1
        # a file with bad rows stays whole: split, a small part could exceed the allowed bad-row share
        if w.q("split_files") and out.height >= 2 and not nbad[kind] and r.random() < 0.25:
            nparts = min(int(r.integers(2, 4)), out.height)
        cuts = [0, *sorted(r.choice(np.arange(1, out.height), nparts - 1, replace=False)), out.height] \
            if nparts > 1 else [0, out.height]
        how = breaks.get(kind)
        for seq in range(1, nparts + 1):
            a, b = int(cuts[seq - 1]), int(cuts[seq])
            part = out.slice(a, b - a)
            encoding = spec.encoding
            broken = how if seq == 1 else None
            if broken == "utf8":
                encoding = "utf-8"
            bom = spec.encoding == "utf-8" and w.q("bom") and r.random() < 0.35
            data = render_csv(part, encoding, bom=bom)
            fix = {i + 1: int(badf[a + i]) for i in np.flatnonzero(badf[a:b] != 0)}
            if fix:
                data = _mangle_fields(data, encoding, fix, r)
            if broken == "truncated":
                body = data[:-2] if data.endswith(b"\r\n") else data
                nl = body.rfind(b"\r\n")
                cut = nl + 2 if nl >= 0 else 0
                last = body[cut:].decode(encoding)
                keep = max(1, len(last) // 2)
                if "," in last[1:]:  # cut before the last separator, so the row is visibly short
                    keep = min(keep, last.rfind(","))
                data = body[:cut] + last[:keep].encode(encoding)
            elif broken == "empty":
                data = b""
            path = folder / data_file_name(kind, ds, seq)
            rows = csv_record_count(data, encoding) if broken in ("truncated", "empty") else part.height
            if broken == "missing":
                entry = {"name": path.name, "rows": rows, "sha256": hashlib.sha256(data).hexdigest()}
            else:
                path.write_bytes(data)
                entry = manifest_entry(path, rows)
            if broken == "row_count":
                entry["rows"] += 1
            elif broken == "checksum":
                entry["sha256"] = hashlib.sha256(data + b"\r\n").hexdigest()
            entries.append(entry)
            nrows += part.height
    write_manifest(folder, ds, entries, generated_at=f"{_date(day + 1).isoformat()} 00:40:12")
    return folder, nrows, ndecl


# ------------------------------------------------------------------------------------------ API


def parse_quirks(spec: str | Iterable[str] | None) -> frozenset[str]:
    """'all' (default), 'none', or a comma list / iterable of names from QUIRKS."""
    if spec is None:
        return frozenset(QUIRKS)
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if names == ["all"]:
        return frozenset(QUIRKS)
    if names in (["none"], []):
        return frozenset()
    unknown = sorted(set(names) - set(QUIRKS))
    if unknown:
        raise ValueError(f"unknown quirk(s) {', '.join(unknown)}; known: {', '.join(QUIRKS)}, all, none")
    return frozenset(names)


def parse_break(spec: str) -> tuple[str, str, str]:
    """'2026-11-21:dec_head:truncated' -> ('2026-11-21', 'dec_head', 'truncated')."""
    parts = spec.split(":")
    if len(parts) != 3:
        raise ValueError(f"--break wants DATE:KIND:HOW, got {spec!r}")
    return parts[0], parts[1], parts[2]


def _check_breaks(breaks: Iterable[Sequence[str]], start_day: int, end_day: int) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for d, kind, how in breaks:
        day = _day(date.fromisoformat(str(d)))
        if not start_day <= day < end_day:
            raise ValueError(f"break date {d} is outside the simulated period")
        if kind not in KINDS:
            raise ValueError(f"unknown file kind {kind!r}; known: {', '.join(KINDS)}")
        if how not in BREAK_MODES:
            raise ValueError(f"unknown break {how!r}; known: {', '.join(BREAK_MODES)}")
        if how == "utf8" and KINDS[kind].encoding != "gb18030":
            raise ValueError(f"utf8 break applies to GB18030 kinds (dec_head, dec_result), not {kind}")
        out.setdefault(day, {})[kind] = how
    return out


@dataclass
class RunStats:
    folders: list[Path]
    days: int
    declarations: int
    rows: int
    seconds: float

    def summary(self) -> str:
        return (f"simulated {self.days} days: {self.declarations} declarations, {self.rows} events (rows of all "
                f"five kinds) in {len(self.folders)} deliveries, {self.seconds:.1f} s")


def run(inbox: str | Path, start: str | date, days: int, scale: float = 1.0, seed: int = DEFAULT_SEED,
        quirks: str | Iterable[str] | None = "all", breaks: Iterable[Sequence[str]] = ()) -> RunStats:
    """simulate() with run statistics."""
    t_start = time.perf_counter()
    start_d = date.fromisoformat(start) if isinstance(start, str) else start
    if days < 1:
        raise ValueError("days must be at least 1")
    if scale <= 0:
        raise ValueError("scale must be positive")
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    start_day = _day(start_d)
    end_day = start_day + days
    brk = _check_breaks(breaks, start_day, end_day)
    w = _World(seed=seed, scale=scale, quirks=parse_quirks(quirks), start_day=start_day, end_day=end_day)
    inbox = Path(inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    pending: dict[int, dict[str, list[pl.DataFrame]]] = {}
    folders: list[Path] = []
    next_day = start_day
    rows = decls = 0

    def flush(upto: int) -> None:
        nonlocal next_day, rows, decls
        while next_day < min(upto, end_day):
            folder, nr, ndc = _deliver(w, inbox, next_day, pending.pop(next_day, {}), brk.get(next_day, {}))
            folders.append(folder)
            rows += nr
            decls += ndc
            next_day += 1

    gen_end = end_day + LEAD_DAYS
    first = start_day
    while first < gen_end:
        last = first + CHUNK_DAYS
        for kind, frame in _gen_chunk(w, first, last).items():
            if frame.height == 0:
                continue
            for (tx,), part in frame.partition_by("_tx", as_dict=True, maintain_order=True).items():
                pending.setdefault(int(tx), {}).setdefault(kind, []).append(part)
        flush(last - LEAD_DAYS)
        first = last
    flush(end_day)
    return RunStats(folders, days, decls, rows, time.perf_counter() - t_start)


def simulate(inbox: str | Path, start: str | date, days: int, scale: float = 1.0, seed: int = DEFAULT_SEED,
             quirks: str | Iterable[str] | None = "all", breaks: Iterable[Sequence[str]] = ()) -> list[Path]:
    """Write deliveries for `days` export dates from `start`; returns the delivery folders in date order.

    quirks: 'all' (default), 'none', a comma list or an iterable of names from QUIRKS.
    breaks: (date, kind, how) triples, how in BREAK_MODES (bad files, never on by default).
    """
    return run(inbox, start, days, scale, seed, quirks, breaks).folders


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clearance_tools.simulator", description=__doc__.split("\n\n")[0])
    ap.add_argument("--inbox", required=True, type=Path, help="inbox folder; one delivery folder per export date")
    ap.add_argument("--start", required=True, help="first export date, YYYY-MM-DD (Beijing)")
    ap.add_argument("--days", required=True, type=int, help="number of export dates")
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = Liaoning volume (~2,700 declarations a day)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--quirks", default="all", help=f"all (default), none, or a comma list of: {', '.join(QUIRKS)}")
    ap.add_argument("--break", dest="breaks", action="append", default=[], metavar="DATE:KIND:HOW",
                    help=f"break a file (repeatable); HOW one of {', '.join(BREAK_MODES)}")
    args = ap.parse_args(argv)
    try:
        stats = run(args.inbox, args.start, args.days, args.scale, args.seed, args.quirks,
                    [parse_break(b) for b in args.breaks])
    except ValueError as exc:
        ap.error(str(exc))
    print(stats.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
