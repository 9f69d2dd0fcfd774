"""Stalled-shipment digests: one mail per office per run, each alert sent once.

The alerts due are worked out from `mart_stalled_shipments` against `alert_log` in the pipeline's
state file, after the night's build and before publishing (the published warehouse carries a copy
of the alert state): a rerun or a backfill finds what was already sent and sends nothing twice. If
the SMTP server is unreachable or refuses, the digest is recorded unsent, its alerts stay pending,
the warehouse is still published, and the next run sends them; a stall that ended meanwhile is
told in a section of its own.

A digest says, stage by stage, how many, the oldest, who acts (port, trader or customs) and the
next step (transforms/seeds/stage_responsibilities.csv), lists a long stage by vessel call, links
the dashboard, and attaches the list as an .xlsx of text cells (Excel and WPS keep every ID whole).
"""

from __future__ import annotations

import hashlib
import html
import io
import logging
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate

import duckdb

from clearance.contract import BEIJING

log = logging.getLogger(__name__)

SMTP_CONN_ID = "smtp_default"
DEFAULT_SENDER = "clearance-monitor@localhost"

# The digest's columns: (key, heading). IDs are written as text cells: a spreadsheet keeps them whole.
COLUMNS = (
    ("level", "级别 Level"), ("entry_id", "报关单号 Declaration"), ("bill_no", "提运单号 Bill"),
    ("stage", "环节 Stage"), ("acting_party", "由谁处理 Who acts"), ("next_step", "下一步 Next step"),
    ("stage_since", "起始 Since"), ("hours_in_stage", "已滞留(小时) Hours"),
    ("threshold_hours", "阈值(小时) Threshold"), ("port_code", "口岸 Port"), ("vessel_id", "船舶 Vessel"),
    ("voyage_no", "航次 Voyage"), ("owner_code", "收发货人代码 Owner code"), ("owner_name", "收发货人 Owner"),
)
# columns of the lists in the mail body (stage, who acts and next step head each stage's section)
MAIL_COLUMNS = tuple(c for c in COLUMNS if c[0] not in ("stage", "acting_party", "next_step"))
PARTIES = {"port": "港口 port", "trader": "企业 trader", "customs": "海关 customs"}
LEVELS = {"stalled": "新滞留 stalled", "escalated": "升级 escalated"}
ENDED = "已结束(当时未能发出) ended before it could be mailed"
# A stage with more alerts than this is listed by vessel call (an office may get ~1,000 at Liaoning volume)
GROUP_BY_CALL_ABOVE = 20


def plan_alerts(con: duckdb.DuckDBPyConnection) -> None:
    """Record every alert now due as pending; a pending one whose stall has ended is kept, to be told
    in the next digest that goes out (its own section), not dropped."""
    con.execute("""
        INSERT INTO alert_log
        SELECT m.alert_key, m.entry_id, m.bill_no, m.stage, m.stage_since,
               CASE WHEN m.is_escalated THEN 'escalated' ELSE 'stalled' END, m.business_date,
               m.hours_in_stage, m.threshold_hours, m.office_code, m.port_code, m.vessel_id, m.voyage_no,
               m.owner_code, m.owner_name, 'pending', NULL
        FROM mart_stalled_shipments AS m
        WHERE m.is_still_open
          AND NOT EXISTS (
              SELECT 1 FROM alert_log AS a
              WHERE a.alert_key = m.alert_key AND a.stage = m.stage
                -- a shipment passes each stage once, so late data moving its start is the same stall;
                -- a hold can come again, and a new hold is a new stall
                AND (a.stage <> 'on_hold' OR a.stage_since = m.stage_since)
                -- a stall is told once; it is told again only when it passes twice its threshold
                AND (a.level = 'escalated' OR NOT m.is_escalated))
    """)
    # a stall that passed twice its threshold before its first digest went out is told once, escalated
    con.execute("""
        UPDATE alert_log SET status = 'superseded'
        WHERE status IN ('pending', 'ended_unsent') AND level = 'stalled' AND EXISTS (
            SELECT 1 FROM alert_log AS e
            WHERE e.level = 'escalated' AND e.alert_key = alert_log.alert_key AND e.stage = alert_log.stage
              AND (e.stage <> 'on_hold' OR e.stage_since = alert_log.stage_since))
    """)
    con.execute("""
        UPDATE alert_log SET status = 'ended_unsent'
        WHERE status = 'pending' AND NOT EXISTS (
            SELECT 1 FROM mart_stalled_shipments AS m
            WHERE m.is_still_open AND m.alert_key = alert_log.alert_key AND m.stage = alert_log.stage
              AND (m.stage <> 'on_hold' OR m.stage_since = alert_log.stage_since))
    """)


@dataclass
class Digest:
    digest_id: str
    office_code: str
    office_name: str
    recipients: list[str]
    alerts: list[dict]  # open stalls, oldest first
    ended: list[dict]  # stalls that began and ended while no digest could go out
    business_date: str
    dashboard_url: str | None = None

    @property
    def new_stalls(self) -> int:
        return sum(a["level"] == "stalled" for a in self.alerts)

    @property
    def escalations(self) -> int:
        return sum(a["level"] == "escalated" for a in self.alerts)

    @property
    def subject(self) -> str:
        ended = f", {len(self.ended)} 期间已结束 ended while unsent" if self.ended else ""
        return (f"[通关时效监控 Clearance monitor] {self.office_code} {self.office_name} {self.business_date}: "
                f"{self.new_stalls} 新滞留 newly stalled, {self.escalations} 升级 escalated{ended}")

    def by_stage(self) -> list[tuple[dict, list[dict]]]:
        """The open stalls by stage, the stage with the oldest stall first; each with its summary."""
        stages: dict[str, list[dict]] = {}
        for alert in self.alerts:
            stages.setdefault(alert["stage"], []).append(alert)
        out = []
        for alerts in sorted(stages.values(), key=lambda group: group[0]["stage_since"]):
            first = alerts[0]
            out.append(({
                "stage": stage_name(first), "count": len(alerts), "escalated": sum(a["level"] == "escalated" for a in alerts),
                "oldest_since": first["stage_since"], "oldest_hours": max(a["hours_in_stage"] for a in alerts),
                "acting_party": PARTIES.get(first["acting_party"], first["acting_party"] or ""),
                "next_step": f"{first['next_step_zh'] or ''} {first['next_step'] or ''}".strip(),
            }, alerts))
        return out


def vessel_calls(alerts: list[dict]) -> list[tuple[str, list[dict]]]:
    """A long stage list by vessel call (vessel, voyage, port), the call with the oldest stall first."""
    calls: dict[tuple, list[dict]] = {}
    for alert in alerts:
        calls.setdefault((alert["vessel_id"] or "", alert["voyage_no"] or "", alert["port_code"] or ""), []).append(alert)
    return [(f"船舶 vessel {v or '–'} · 航次 voyage {n or '–'} · 口岸 port {p or '–'}: {len(group)} 票 shipments", group)
            for (v, n, p), group in calls.items()]


def pending_digests(con: duckdb.DuckDBPyConnection, business_date: str, dashboard_url: str | None = None) -> list[Digest]:
    """One digest per office with alerts to tell, oldest stall first."""
    cur = con.execute("""
        SELECT a.*, r.stage_label_zh, r.stage_label, r.acting_party, r.next_step_zh, r.next_step,
               coalesce(o.office_name_zh, '') AS office_name_zh,
               coalesce(own.recipients, fallback.recipients, []) AS recipients
        FROM alert_log AS a
        LEFT JOIN ref_stage_responsibilities AS r ON r.stage = a.stage
        LEFT JOIN ref_customs_offices AS o ON o.office_code = a.office_code
        LEFT JOIN (SELECT office_code, list(email ORDER BY email) AS recipients FROM ref_alert_recipients
                   GROUP BY office_code) AS own ON own.office_code = a.office_code
        LEFT JOIN (SELECT list(email ORDER BY email) AS recipients FROM ref_alert_recipients
                   WHERE office_code = '*') AS fallback ON true
        WHERE a.status IN ('pending', 'ended_unsent')
        ORDER BY a.office_code, a.stage_since, a.alert_key, a.stage, a.level
    """)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    digests: dict[str, Digest] = {}
    for row in rows:
        office = row["office_code"]
        if office not in digests:
            digests[office] = Digest("", office, row["office_name_zh"], list(row["recipients"]), [], [], business_date,
                                     dashboard_url)
        (digests[office].ended if row["status"] == "ended_unsent" else digests[office].alerts).append(row)
    for digest in digests.values():
        keys = "|".join(f"{a['alert_key']}/{a['stage']}/{a['stage_since']}/{a['level']}/{a['status']}"
                        for a in digest.alerts + digest.ended)
        digest.digest_id = f"{business_date}-{digest.office_code}-{hashlib.sha256(keys.encode()).hexdigest()[:12]}"
    return list(digests.values())


def stage_name(alert: dict) -> str:
    return f"{alert['stage_label_zh'] or ''} {alert['stage_label'] or alert['stage']}".strip()


def _cell(alert: dict, column: str) -> str:
    value = alert.get(column)
    if column == "stage":
        return stage_name(alert)
    if column == "level":
        return ENDED if alert.get("status") == "ended_unsent" else LEVELS.get(value, value)
    if column == "acting_party":
        return PARTIES.get(value, value or "")
    if column == "next_step":
        return f"{alert.get('next_step_zh') or ''} {value or ''}".strip()
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


def render_xlsx(digest: Digest) -> bytes:
    """The digest as a spreadsheet Excel and WPS open with every ID whole: every cell is a text cell
    (never a number, so an 18-digit ENTRY_ID keeps its leading zero and every digit; never a formula)."""
    import xlsxwriter  # only when there is mail to send

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False,
                                     "strings_to_urls": False})
    text = book.add_format({"num_format": "@"})  # cells typed into later stay text too
    head = book.add_format({"num_format": "@", "bold": True, "bg_color": "#E5E7EB"})
    sheet = book.add_worksheet("滞留 stalled")
    rows = digest.alerts + digest.ended
    for col, (key, label) in enumerate(COLUMNS):
        widest = max([len(label)] + [len(_cell(a, key)) for a in rows])
        sheet.set_column(col, col, min(max(widest * 1.3, 10), 60), text)
        sheet.write_string(0, col, label, head)
    for row, alert in enumerate(rows, start=1):
        for col, (key, _) in enumerate(COLUMNS):
            sheet.write_string(row, col, _cell(alert, key), text)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, len(rows), len(COLUMNS) - 1)
    book.close()
    return out.getvalue()


def _summary_line(summary: dict) -> str:
    return (f"{summary['stage']}: {summary['count']} 票 shipments ({summary['escalated']} 升级 escalated); "
            f"最久 oldest since {summary['oldest_since']:%Y-%m-%d %H:%M} ({summary['oldest_hours']:.0f} h); "
            f"由谁处理 who acts: {summary['acting_party']}; 下一步 next step: {summary['next_step']}")


def render_text(digest: Digest) -> str:
    lines = [
        f"{digest.office_code} {digest.office_name} — 业务日期 business date {digest.business_date}",
        f"新滞留 newly stalled: {digest.new_stalls}; 升级(超过两倍阈值) escalated past twice the threshold: "
        f"{digest.escalations}. The attached spreadsheet (.xlsx) lists the same shipments.",
    ]
    if digest.dashboard_url:
        lines.append(f"看板 Dashboard: {digest.dashboard_url}")
    stages = digest.by_stage()
    lines += ["", "按环节汇总 By stage:"] + [f"- {_summary_line(s)}" for s, _ in stages]

    def listed(alerts: list[dict]) -> list[str]:
        return ["    " + " | ".join(f"{label.split(' ', 1)[1]}: {_cell(a, c)}" for c, label in MAIL_COLUMNS if _cell(a, c))
                for a in alerts]

    for summary, alerts in stages:
        lines += ["", f"== {summary['stage']} — {summary['acting_party']}: {summary['next_step']}"]
        if len(alerts) > GROUP_BY_CALL_ABOVE:
            for call, group in vessel_calls(alerts):
                lines += [f"  {call}"] + listed(group)
        else:
            lines += listed(alerts)
    if digest.ended:
        lines += ["", f"== 邮件无法发出期间开始并已结束的滞留 Stalls that began and ended while mail could not go out: "
                      f"{len(digest.ended)}"]
        lines += ["    " + " | ".join(f"{label.split(' ', 1)[1]}: {_cell(a, c)}" for c, label in COLUMNS if _cell(a, c))
                  for a in digest.ended]
    return "\n".join(lines) + "\n"


_TD = 'style="padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"'
_TH = 'style="text-align:left;padding:4px 8px;border-bottom:2px solid #555"'


def _html_table(alerts: list[dict], columns=MAIL_COLUMNS) -> str:
    head = "".join(f"<th {_TH}>{html.escape(label)}</th>" for _, label in columns)
    body = "".join(
        f'<tr style="background:{"#fde2e1" if a["level"] == "escalated" and a.get("status") != "ended_unsent" else "#fff"}">'
        + "".join(f"<td {_TD}>{html.escape(_cell(a, c))}</td>" for c, _ in columns) + "</tr>"
        for a in alerts)
    return f'<table style="border-collapse:collapse;font-size:13px"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_html(digest: Digest) -> str:
    esc = html.escape
    stages = digest.by_stage()
    parts = [
        '<html><body style="font-family:sans-serif">',
        f"<h2>{esc(digest.office_code)} {esc(digest.office_name)}: 滞留货物 stalled shipments</h2>",
        f"<p>业务日期 Business date <b>{esc(digest.business_date)}</b> (截至北京时间 cut-off at the end of the "
        f"day, Beijing time). 新滞留 newly stalled: <b>{digest.new_stalls}</b>; 升级 escalated past twice the "
        f"threshold: <b>{digest.escalations}</b>. 最久的在前 Oldest first.</p>",
    ]
    if digest.dashboard_url:
        parts.append(f'<p>看板 Dashboard: <a href="{esc(digest.dashboard_url, quote=True)}">{esc(digest.dashboard_url)}</a></p>')
    if stages:
        parts.append("<h3>按环节汇总 By stage</h3><ul>" + "".join(f"<li>{esc(_summary_line(s))}</li>" for s, _ in stages) + "</ul>")
    for summary, alerts in stages:
        parts.append(f"<h3>{esc(summary['stage'])} — {summary['count']} 票 shipments</h3>"
                     f"<p>由谁处理 Who acts: <b>{esc(summary['acting_party'])}</b>. 下一步 Next step: {esc(summary['next_step'])}</p>")
        if len(alerts) > GROUP_BY_CALL_ABOVE:
            for call, group in vessel_calls(alerts):
                parts.append(f"<h4>{esc(call)}</h4>{_html_table(group)}")
        else:
            parts.append(_html_table(alerts))
    if digest.ended:
        parts.append("<h3>邮件无法发出期间开始并已结束的滞留 Stalls that began and ended while mail could not go out "
                     f"({len(digest.ended)})</h3><p>These stalls were found while the mail server could not be reached; "
                     "they have ended since. Listed so that nothing found goes untold.</p>"
                     + _html_table(digest.ended, COLUMNS))
    parts.append('<p style="color:#666">附件为同一清单的Excel表格 The attached spreadsheet (.xlsx) lists the same shipments.</p>'
                 "</body></html>")
    return "".join(parts)


def build_message(digest: Digest, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = digest.subject
    message["From"] = sender
    message["To"] = ", ".join(digest.recipients)
    message["Date"] = formatdate(localtime=False)
    # the same digest always has the same Message-ID, so a mail client shows a resend once
    message["Message-ID"] = f"<{digest.digest_id}@clearance-monitor>"
    message.set_content(render_text(digest))
    message.add_alternative(render_html(digest), subtype="html")
    message.add_attachment(render_xlsx(digest), maintype="application",
                           subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                           filename=f"stalled-{digest.office_code}-{digest.business_date}.xlsx")
    return message


def send_digests(con: duckdb.DuckDBPyConnection, business_date: str, smtp_conn_id: str = SMTP_CONN_ID,
                 dashboard_url: str | None = None) -> dict:
    """Plan the alerts, send one digest per office, record what was sent and what was not."""
    plan_alerts(con)
    digests = pending_digests(con, business_date, dashboard_url)
    outcome = {"sent": 0, "unsent": 0, "alerts_sent": 0}
    if not digests:
        log.info("no new stalled shipments: no digest to send")
        return outcome
    hook = None
    connect_error = None
    try:
        from airflow.providers.smtp.hooks.smtp import SmtpHook  # imported only when there is mail to send

        hook = SmtpHook(smtp_conn_id=smtp_conn_id)
        hook.get_conn()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means: keep pending
        connect_error = f"{type(exc).__name__}: {exc}"
    try:
        for digest in digests:
            status, error = "unsent", connect_error
            if not digest.recipients:
                error = f"no recipients configured for office {digest.office_code} and no * fallback"
            elif hook is not None and connect_error is None:
                try:
                    message = build_message(digest, hook.from_email or DEFAULT_SENDER)
                    # SmtpHook.send_email_smtp cannot build multipart/alternative: send the message we built
                    # through the client the hook opened (its TLS, login and retries).
                    hook._smtp_client.send_message(message)
                    status, error = "sent", None
                except Exception as exc:  # noqa: BLE001
                    error = f"{type(exc).__name__}: {exc}"
            record_digest(con, digest, status, error)
            if status == "sent":
                outcome["sent"] += 1
                outcome["alerts_sent"] += len(digest.alerts) + len(digest.ended)
                log.info("digest %s sent to %s: %d newly stalled, %d escalated", digest.digest_id,
                         ", ".join(digest.recipients), digest.new_stalls, digest.escalations)
            else:
                outcome["unsent"] += 1
                log.warning("DIGEST NOT SENT for office %s (%d alerts kept pending, they go out with the next run): %s",
                            digest.office_code, len(digest.alerts) + len(digest.ended), error)
    finally:
        if hook is not None and hook._smtp_client is not None:
            try:
                hook.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
    return outcome


def record_digest(con: duckdb.DuckDBPyConnection, digest: Digest, status: str, error: str | None) -> None:
    con.execute(
        "INSERT INTO alert_digests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [digest.digest_id, digest.business_date, digest.office_code, digest.recipients, digest.subject,
         digest.new_stalls, digest.escalations, status, error, datetime.now(BEIJING).replace(tzinfo=None)],
    )
    if status == "sent":
        con.execute(
            "UPDATE alert_log SET status = CASE status WHEN 'ended_unsent' THEN 'sent_after_end' ELSE 'sent' END, "
            "digest_id = ? WHERE status IN ('pending', 'ended_unsent') AND office_code = ?",
            [digest.digest_id, digest.office_code],
        )
