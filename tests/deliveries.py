"""Builders for hand-written deliveries: rows with contract defaults, so a test states only what matters."""

from __future__ import annotations

from clearance.contract import iso6346_check_digit


def container(serial: int, owner: str = "CSQU") -> str:
    """A valid ISO 6346 container number."""
    body = f"{owner}{serial:06d}"
    return body + str(iso6346_check_digit(body))


def entry_id(seq: int, office: str = "0900", direction: str = "I") -> str:
    return f"{office}2026{'1' if direction == 'I' else '0'}{seq:09d}"


def dec_head(entry: str, d_date: str, *, update_time: str | None = None, i_e_flag: str = "I", office: str = "0900",
             port: str = "DLC", bill: str = "", vessel: str = "9123456", voyage: str = "2611W", traf_mode: str = "2",
             decl_step: str = "", advance: str = "N", shipside: str = "N", rbi: str = "N", hs: str = "8471300000",
             gross_wt: str = "1000", owner_name: str = "大连某某贸易有限公司") -> dict:
    return {
        "ENTRY_ID": entry, "UPDATE_TIME": update_time or d_date, "I_E_FLAG": i_e_flag, "CUSTOM_MASTER": office,
        "I_E_PORT": office, "PORT_CODE": port, "D_DATE": d_date, "DECL_STEP": decl_step, "ADVANCE": advance,
        "SHIPSIDE": shipside, "RBI": rbi, "TRADE_MODE": "0110", "TRAF_MODE": traf_mode,
        "VESSEL_ID": vessel if traf_mode == "2" else "", "VOYAGE_NO": voyage, "BILL_NO": bill,
        "OWNER_CODE": "91210200MA0XXXXX1K", "OWNER_NAME": owner_name, "MAIN_CODE_TS": hs, "GROSS_WT": gross_wt,
    }


def receipt(entry: str, channel: str, notice: str, office: str = "0900", note: str = "") -> dict:
    return {"ENTRY_ID": entry, "CHANNEL": channel, "NOTICE_DATE": notice, "CUSTOM_MASTER": office, "NOTE": note}


def manifest_line(bill: str, container_no: str = "", *, vessel: str = "9123456", voyage: str = "2611W",
                  port: str = "DLC", update_time: str = "2026-11-18 10:00:00", gross_wt: str = "1000") -> dict:
    return {"VESSEL_ID": vessel, "VOYAGE_NO": voyage, "PORT_CODE": port, "BILL_NO": bill,
            "CONTAINER_NO": container_no, "GROSS_WT": gross_wt, "UPDATE_TIME": update_time}


def vessel_event(code: str, time: str, *, vessel: str = "9123456", voyage: str = "2611W", port: str = "DLC") -> dict:
    return {"VESSEL_ID": vessel, "VOYAGE_NO": voyage, "PORT_CODE": port, "EVENT_CODE": code, "EVENT_TIME": time,
            "SOURCE": "PCS"}


def cargo_event(bill: str, code: str, time: str, container_no: str = "", *, vessel: str = "9123456",
                voyage: str = "2611W", port: str = "DLC") -> dict:
    return {"VESSEL_ID": vessel, "VOYAGE_NO": voyage, "PORT_CODE": port, "BILL_NO": bill,
            "CONTAINER_NO": container_no, "EVENT_CODE": code, "EVENT_TIME": time}
