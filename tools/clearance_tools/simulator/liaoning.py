"""The simulated province: Liaoning's ports, customs offices, trade flows, cargo, carriers and traders.

Rates are per day at scale 1 (about a million declarations and 20 million events a year).
"""

from __future__ import annotations

import numpy as np

# Dalian, Yingkou, Dandong, Jinzhou, Panjin, Huludao, and Shenyang, the inland hub (rail and air)
PORTS = ("DLC", "YKP", "DDG", "JZH", "PJN", "HLD", "SHE")
SEA_PORTS = PORTS[:6]
PORT_INDEX = {port: i for i, port in enumerate(PORTS)}
PORT_OFFICE = {"DLC": "0900", "YKP": "0900", "JZH": "0900", "PJN": "0900", "HLD": "0900", "DDG": "0930",
               "SHE": "0800", "BYQ": "0900"}
UNKNOWN_PORT = "BYQ"  # Bayuquan: a Yingkou port area missing from the sample dictionary
UNKNOWN_OFFICE = "0931"  # a Dandong sub-office missing from the office dictionary

# Container vessel calls per day and sea port (at least one per port and day), and the share of
# calls that anchor before berthing.
CONTAINER_CALLS_PER_DAY = np.array([22.0, 10.0, 2.5, 2.0, 1.5, 1.5])
ANCHORAGE_SHARE = np.array([0.75, 0.8, 0.6, 0.6, 0.6, 0.6])

# Declaration flows: (port, import?, TRAF_MODE, declarations per day, share declared in advance).
FLOWS = (
    ("DLC", True, 2, 720, 0.45), ("YKP", True, 2, 330, 0.40), ("DDG", True, 2, 60, 0.25),
    ("JZH", True, 2, 50, 0.30), ("PJN", True, 2, 40, 0.30), ("HLD", True, 2, 40, 0.25),
    ("SHE", True, 3, 100, 0.35), ("SHE", True, 5, 90, 0.50),
    ("DLC", False, 2, 660, 0.20), ("YKP", False, 2, 280, 0.20), ("DDG", False, 2, 55, 0.15),
    ("JZH", False, 2, 40, 0.15), ("PJN", False, 2, 30, 0.15), ("HLD", False, 2, 30, 0.15),
    ("SHE", False, 3, 80, 0.20), ("SHE", False, 5, 75, 0.25),
)
FLOW_PORT = np.array([PORT_INDEX[f[0]] for f in FLOWS])
FLOW_IS_IMPORT = np.array([f[1] for f in FLOWS])
FLOW_TRANSPORT_MODE = np.array([f[2] for f in FLOWS])
FLOW_DECLARATIONS_PER_DAY = np.array([f[3] for f in FLOWS], dtype=float)
FLOW_ADVANCE_SHARE = np.array([f[4] for f in FLOWS])
WEEKDAY_FACTOR = np.array([1.05, 1.05, 1.05, 1.05, 1.05, 0.90, 0.85])  # Monday .. Sunday

BULK_SHARE = np.zeros(len(PORTS))  # share of sea import bills that are bulk, by port
BULK_SHARE[PORT_INDEX["DLC"]], BULK_SHARE[PORT_INDEX["YKP"]] = 0.05, 0.14
ORE_SHARE = np.zeros(len(PORTS))  # share of bulk bills that are ore (the rest grain and oil seeds)
ORE_SHARE[PORT_INDEX["DLC"]], ORE_SHARE[PORT_INDEX["YKP"]] = 0.35, 0.60
AUTO_PARTS_SHARE_IMPORT = np.zeros(len(PORTS))
AUTO_PARTS_SHARE_IMPORT[PORT_INDEX["DLC"]], AUTO_PARTS_SHARE_IMPORT[PORT_INDEX["SHE"]] = 0.12, 0.30
AUTO_PARTS_SHARE_EXPORT = np.zeros(len(PORTS))
AUTO_PARTS_SHARE_EXPORT[PORT_INDEX["DLC"]], AUTO_PARTS_SHARE_EXPORT[PORT_INDEX["SHE"]] = 0.08, 0.10

HS_ORE = ("2601111000", "2601112000", "2601120000", "2603000010", "2603000090", "2606000000", "2602000000")
HS_GRAIN = ("1001990000", "1005900000", "1201901000", "1205109000", "1206009000", "1003900000")
HS_AUTO_PARTS = ("8708299000", "8708409100", "8708999990", "8708301000", "8407340090", "8408209010", "8409919990",
                 "8409999100")
HS_OTHER_IMPORTS = ("0303890090", "0306171900", "0202300090", "4403990090", "8471300000", "8517130000", "3901100090",
                    "7208510000", "2710192200", "3004909099", "8486209000", "2204210000", "8479899990", "4407119000")
HS_OTHER_EXPORTS = ("1604140090", "0304720000", "6204430000", "6110200045", "4011100000", "7308900000", "8501520000",
                    "9403609990", "2905110000", "7210490000", "8483409000", "1605529000", "6402999000", "8716800000")
assert all(len(c) == 10 and c.isdigit()
           for c in HS_ORE + HS_GRAIN + HS_AUTO_PARTS + HS_OTHER_IMPORTS + HS_OTHER_EXPORTS)

TRADE_MODES = ("0110", "0615", "0214", "1233", "5034")
TRADE_MODE_SHARE = (0.74, 0.10, 0.04, 0.07, 0.05)
CROSS_BORDER_ECOMMERCE = "9610"  # a share of air exports
CARRIER_SCAC = ("COSU", "MSCU", "MAEU", "ONEY", "EGLV", "CMDU", "HLCU", "OOLU", "YMLU", "KMTU", "HDMU", "ZIMU", "PCIU",
                "SITU")
BULK_BILL_PREFIXES = ("VALE", "RTIO", "BHPB", "FMGL", "CARG", "ADMB", "BNGE", "LDCB")
RAIL_BILL_PREFIX = "SYRW"
AIRLINE_AWB_PREFIXES = ("999", "784", "180", "297", "618", "160", "020", "205")
CONTAINER_OWNER_CODES = ("CSNU", "CCLU", "TCNU", "MSKU", "TGHU", "SEGU", "FCIU", "BMOU", "TEMU", "CAIU", "GESU", "TRHU",
                         "OOCU", "EGSU", "ONEU", "HLXU", "CBHU", "DFSU", "TLLU", "MRKU", "TBJU")
# The Shenyang hub's trains and flights: (number, usual arrival hour) inbound, number outbound.
INBOUND_TRAINS = (("X9018", 6.0), ("X9020", 9.5), ("X8084", 13.0), ("X9062", 17.0), ("80112", 21.0))
INBOUND_FLIGHTS = (("CK264", 2.0), ("CA1052", 8.0), ("KE321", 11.5), ("OZ323", 14.0), ("CZ6081", 16.5),
                   ("SU9104", 19.0), ("5Y8345", 22.0))
OUTBOUND_TRAINS = ("X8017", "X8019", "X8083", "80111")
OUTBOUND_FLIGHTS = ("CK263", "CA1051", "KE322", "OZ324", "CZ6082", "5Y8346")

# The notes customs writes on its receipts, by CHANNEL (one is picked at random).
RECEIPT_NOTES = {
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
TAX_NOTES = ("需交税费：关税", "需交税费：进口环节增值税", "需交税费：消费税")  # first, second, third tax notice

# Traders: registered in a city (region code of their credit code), named city + trade name + line of
# business + company form.
CITIES = (("大连", "210200"), ("沈阳", "210100"), ("营口", "210800"), ("丹东", "210600"), ("锦州", "210700"),
          ("盘锦", "211100"), ("葫芦岛", "211400"), ("鞍山", "210300"), ("辽宁", "210000"), ("北京", "110000"),
          ("上海", "310000"))
CITY_SHARE = (0.36, 0.2, 0.1, 0.05, 0.04, 0.03, 0.03, 0.04, 0.07, 0.04, 0.04)
TRADE_NAMES = ("华信", "恒达", "鑫源", "远洋", "中联", "瑞丰", "宏图", "金桥", "海通", "正泰", "盛世", "永泰",
               "东方", "北方", "新纪元", "万通", "嘉禾", "富港", "华晨", "辽渔", "港湾", "长兴", "鲁辽", "中储",
               "欧亚", "东北亚")
LINES_OF_BUSINESS = ("国际贸易", "进出口", "国际物流", "汽车零部件", "粮油", "矿业", "水产", "机械设备", "化工", "钢铁",
                     "食品", "供应链管理", "电子科技")
COMPANY_FORMS = ("有限公司", "股份有限公司", "有限责任公司")
