"""Stalled-shipment digests: one mail per office per run, each alert sent once.

The alerts due are worked out from `mart_stalled_shipments` against `alert_log` in the pipeline's
state file, after the night's build and before publishing (the published warehouse carries a copy
of the alert state): a rerun or a backfill finds what was already sent and sends nothing twice. If the SMTP server is unreachable or refuses,
the digest is recorded unsent, its alerts stay pending, the warehouse is still published, and the
next run sends them.
"""

from __future__ import annotations

import csv
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

COLUMNS = (
    ("level", "级别 Level"), ("entry_id", "报关单号 Declaration"), ("bill_no", "提运单号 Bill"),
    ("stage", "环节 Stage"), ("stage_since", "起始 Since"), ("hours_in_stage", "已滞留(小时) Hours"),
    ("threshold_hours", "阈值(小时) Threshold"), ("port_code", "口岸 Port"), ("vessel_id", "船舶 Vessel"),
    ("voyage_no", "航次 Voyage"), ("owner_code", "收发货人代码 Owner code"), ("owner_name", "收发货人 Owner"),
)


def plan_alerts(con: duckdb.DuckDBPyConnection) -> None:
    """Record every alert now due as pending; withdraw pending ones whose stall has ended."""
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
        WHERE status = 'pending' AND level = 'stalled' AND EXISTS (
            SELECT 1 FROM alert_log AS e
            WHERE e.level = 'escalated' AND e.alert_key = alert_log.alert_key AND e.stage = alert_log.stage
              AND (e.stage <> 'on_hold' OR e.stage_since = alert_log.stage_since))
    """)
    con.execute("""
        UPDATE alert_log SET status = 'withdrawn'
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
    alerts: list[dict]
    business_date: str

    @property
    def new_stalls(self) -> int:
        return sum(a["level"] == "stalled" for a in self.alerts)

    @property
    def escalations(self) -> int:
        return sum(a["level"] == "escalated" for a in self.alerts)

    @property
    def subject(self) -> str:
        return (f"[通关时效监控 Clearance monitor] {self.office_code} {self.office_name} {self.business_date}: "
                f"{self.new_stalls} 新滞留 newly stalled, {self.escalations} 升级 escalated")


def pending_digests(con: duckdb.DuckDBPyConnection, business_date: str) -> list[Digest]:
    """One digest per office with pending alerts, oldest stall first."""
    cur = con.execute("""
        SELECT a.*, t.stage_label_zh, t.stage_label, coalesce(o.office_name_zh, '') AS office_name_zh,
               coalesce(own.recipients, fallback.recipients, []) AS recipients
        FROM alert_log AS a
        LEFT JOIN ref_stall_thresholds AS t ON t.stage = a.stage AND t.office_code IS NULL
        LEFT JOIN ref_customs_offices AS o ON o.office_code = a.office_code
        LEFT JOIN (SELECT office_code, list(email ORDER BY email) AS recipients FROM ref_alert_recipients
                   GROUP BY office_code) AS own ON own.office_code = a.office_code
        LEFT JOIN (SELECT list(email ORDER BY email) AS recipients FROM ref_alert_recipients
                   WHERE office_code = '*') AS fallback ON true
        WHERE a.status = 'pending'
        ORDER BY a.office_code, a.stage_since, a.alert_key, a.stage, a.level
    """)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    digests: dict[str, Digest] = {}
    for row in rows:
        office = row["office_code"]
        if office not in digests:
            digests[office] = Digest("", office, row["office_name_zh"], list(row["recipients"]), [], business_date)
        digests[office].alerts.append(row)
    for digest in digests.values():
        keys = "|".join(f"{a['alert_key']}/{a['stage']}/{a['stage_since']}/{a['level']}" for a in digest.alerts)
        digest.digest_id = f"{business_date}-{digest.office_code}-{hashlib.sha256(keys.encode()).hexdigest()[:12]}"
    return list(digests.values())


def spreadsheet_safe(value: object) -> str:
    """A cell a spreadsheet would run as a formula (= + - @, or a tab/CR lead) is made plain text."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _cell(alert: dict, column: str) -> str:
    value = alert.get(column)
    if column == "stage":
        return f"{alert['stage_label_zh']} {alert['stage_label']}"
    if column == "level":
        return "升级 escalated" if value == "escalated" else "新滞留 stalled"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


def render_csv(digest: Digest) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([label for _, label in COLUMNS])
    for alert in digest.alerts:
        writer.writerow([spreadsheet_safe(_cell(alert, c)) for c, _ in COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # BOM: spreadsheets then read the Chinese right


def render_text(digest: Digest) -> str:
    lines = [
        f"{digest.office_code} {digest.office_name} — 业务日期 business date {digest.business_date}",
        f"新滞留 newly stalled: {digest.new_stalls}; 升级(超过两倍阈值) escalated past twice the threshold: "
        f"{digest.escalations}. Oldest first; the attached CSV lists the same shipments.",
        "",
    ]
    for alert in digest.alerts:
        lines.append(" | ".join(f"{label.split(' ', 1)[1]}: {_cell(alert, c)}" for c, label in COLUMNS if _cell(alert, c)))
    return "\n".join(lines) + "\n"


def render_html(digest: Digest) -> str:
    head = "".join(f'<th style="text-align:left;padding:4px 8px;border-bottom:2px solid #555">{html.escape(label)}</th>'
                   for _, label in COLUMNS)
    body = []
    for alert in digest.alerts:
        colour = "#fde2e1" if alert["level"] == "escalated" else "#fff"
        cells = "".join(f'<td style="padding:4px 8px;border-bottom:1px solid #ddd">{html.escape(_cell(alert, c))}</td>'
                        for c, _ in COLUMNS)
        body.append(f'<tr style="background:{colour}">{cells}</tr>')
    return (
        '<html><body style="font-family:sans-serif">'
        f"<h2>{html.escape(digest.office_code)} {html.escape(digest.office_name)}: 滞留货物 stalled shipments</h2>"
        f"<p>业务日期 Business date <b>{html.escape(digest.business_date)}</b> (截至北京时间 cut-off at the end of the "
        f"day, Beijing time). 新滞留 newly stalled: <b>{digest.new_stalls}</b>; 升级 escalated past twice the "
        f"threshold: <b>{digest.escalations}</b>. 最久的在前 Oldest first.</p>"
        f'<table style="border-collapse:collapse;font-size:13px"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        "<p style=\"color:#666\">附件为同一清单的CSV The attached CSV lists the same shipments.</p>"
        "</body></html>"
    )


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
    message.add_attachment(render_csv(digest), maintype="text", subtype="csv",
                           filename=f"stalled-{digest.office_code}-{digest.business_date}.csv")
    return message


def send_digests(con: duckdb.DuckDBPyConnection, business_date: str, smtp_conn_id: str = SMTP_CONN_ID) -> dict:
    """Plan the alerts, send one digest per office, record what was sent and what was not."""
    plan_alerts(con)
    digests = pending_digests(con, business_date)
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
                outcome["alerts_sent"] += len(digest.alerts)
                log.info("digest %s sent to %s: %d newly stalled, %d escalated", digest.digest_id,
                         ", ".join(digest.recipients), digest.new_stalls, digest.escalations)
            else:
                outcome["unsent"] += 1
                log.warning("DIGEST NOT SENT for office %s (%d alerts kept pending, they go out with the next run): %s",
                            digest.office_code, len(digest.alerts), error)
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
            "UPDATE alert_log SET status = 'sent', digest_id = ? WHERE status = 'pending' AND office_code = ?",
            [digest.digest_id, digest.office_code],
        )
