"""The operators' mail: a night that failed, and a night not published by its deadline.

Both go to CLEARANCE_OPERATOR_EMAILS through Airflow's connection `smtp_default`.

- `night_failed` is the DAG's on_failure_callback. Airflow runs a DAG-level callback in the DAG
  processor when the run has failed, whatever the cause, also when the task was killed by the
  kernel (a task-level callback runs inside the task's own process and dies with it). It reads the
  end of the failed task's log for the error.
  A task that raised writes its error beside the warehouse first (`record_task_error`, the tasks'
  own failure callback), so the mail has it whatever the logging set-up; a task that was killed
  wrote nothing, and the end of its log is used.
- `night_not_published` is the callback of the DAG's DeadlineAlert; it runs in the triggerer.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import time
from pathlib import Path

from clearance.orchestration import DAG_ID, business_date_of_run, run_type_of

log = logging.getLogger(__name__)

SMTP_CONN_ID = "smtp_default"
ERROR_LINES = 15
SEND_TRIES, SEND_PAUSE_SECONDS = 3, 10  # the SMTP server may be away for a moment: try again before giving up

# an absolute path in an error message, up to the separator that follows it ("<path>: reason", "<path>, line 3")
_PATH = re.compile(r"(/[^\s:,'\"()]+)")


def operators() -> list[str]:
    return [a.strip() for a in os.environ.get("CLEARANCE_OPERATOR_EMAILS", "clearance-operators@localhost").split(",")
            if a.strip()]


def task_log_file(ti) -> Path | None:
    """Where the task's log of that try is, as the workers write it (`[logging] base_log_folder`)."""
    try:
        import jinja2
        from airflow.configuration import conf

        template = conf.get("logging", "log_filename_template")
        relative = jinja2.Template(template).render(ti=ti, try_number=ti.try_number)
        return Path(conf.get("logging", "base_log_folder")) / relative
    except Exception:  # noqa: BLE001 - the mail goes out without the log's location rather than not at all
        log.exception("could not work out the log file of %s", ti)
        return None


def _log_lines(path: Path) -> list[tuple[str, str]]:
    """(level, text) of each log record; Airflow 3 writes task logs as JSON lines."""
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            lines.append(("", raw))
            continue
        if not isinstance(record, dict):
            lines.append(("", raw))
            continue
        level, text = str(record.get("level", "")), str(record.get("event", ""))
        for exc in record.get("error_detail") or []:
            text += f"\n{exc.get('exc_type', '')}: {exc.get('exc_value', '')}"
        lines.append((level, text))
    return lines


def error_file(ti) -> Path:
    """Where a task that raised leaves its error for the run's failure mail."""
    from clearance.config import settings

    safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", ti.run_id)
    return settings().work_dir / "errors" / safe_run / f"{ti.task_id}.{ti.try_number}.json"


def _named_file(exc: BaseException, context) -> str | None:
    """The file a pipeline error is about: a DeliveryError names it (a data file by its name in the delivery)."""
    source = getattr(exc, "source", None)
    if not source:
        return None
    path = Path(source)
    if not path.is_absolute():
        from clearance.pipeline import manifest_path

        path = manifest_path(business_date_of_run(context["dag_run"])).parent / path
    line = getattr(exc, "line", None)
    return f"{path}, line {line}" if line else str(path)


def record_task_error(context) -> None:
    """The tasks' on_failure_callback: keep the error (it runs in the task's own process, which knows it)."""
    import traceback

    exc, ti = context.get("exception"), context.get("ti")
    if ti is None or not isinstance(exc, BaseException):
        return
    lines = "".join(traceback.format_exception(exc)).rstrip().splitlines()
    try:
        named = _named_file(exc, context)
    except Exception:  # noqa: BLE001 - the error itself matters more than where it points
        named = None
    path = error_file(ti)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}", "traceback": lines[-ERROR_LINES:],
                                "file": named}, ensure_ascii=False), encoding="utf-8")


def error_summary(ti, log_file: Path | None) -> tuple[str, str | None]:
    """The error's last lines (recorded by the task, else from its log), and the file it names."""
    recorded = error_file(ti) if ti is not None else None
    if recorded is not None and recorded.exists():
        data = json.loads(recorded.read_text(encoding="utf-8"))
        return data["error"] + "\n\nTraceback (last lines):\n" + "\n".join(data["traceback"]), data.get("file")
    if log_file is None or not log_file.exists():
        return f"(no error recorded and no task log at {log_file}: the task was killed before it logged)", None
    lines = _log_lines(log_file)
    errors = [text for level, text in lines if level.lower() in ("error", "critical")]
    text = "\n".join((errors or [text for _, text in lines])[-ERROR_LINES:]).strip()
    named = [m for m in _PATH.findall(text) if Path(m).suffix and "site-packages" not in m]
    return ("The task raised no error of its own: it was killed (kill -9, out of memory?) or lost. "
            f"End of its log:\n{text}"), (named[-1] if named else None)


def send(subject: str, body: str) -> None:
    """A plain-text notice in an HTML mail (<pre>), tried a few times."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    content = f"<pre style=\"font-family:monospace\">{html.escape(body)}</pre>"
    for attempt in range(1, SEND_TRIES + 1):
        try:
            with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as hook:
                hook.send_email_smtp(to=operators(), subject=subject, html_content=content,
                                     from_email=hook.from_email or "clearance-monitor@localhost")
            log.info("operators told: %s", subject)
            return
        except Exception:  # noqa: BLE001 - log it and try again; the last failure is raised
            log.exception("could not mail the operators (try %d of %d): %s", attempt, SEND_TRIES, subject)
            if attempt == SEND_TRIES:
                raise
            time.sleep(SEND_PAUSE_SECONDS)


def _after_publish(context, task_id: str) -> bool:
    """Whether the failed task runs only once the night was published (the dashboard, the exports)."""
    dag = context.get("dag")
    try:
        return "publish_warehouse" in dag.get_task(task_id).get_flat_relative_ids(upstream=True)
    except Exception:  # noqa: BLE001 - no DAG or no such task in the context: nothing after publishing failed
        return False


def failure_notice(context) -> tuple[str, str]:
    """Subject and body of the mail for a failed run, from the DAG callback's context."""
    dag_run, ti = context.get("dag_run"), context.get("ti")
    run_id = context.get("run_id") or getattr(dag_run, "run_id", "?")
    day = business_date_of_run(dag_run) if dag_run is not None else f"unknown (run {run_id})"
    task = getattr(ti, "task_id", None) or "unknown task"
    log_file = task_log_file(ti) if ti is not None else None
    error, named = error_summary(ti, log_file)
    lines = [
        f"The nightly clearance run for business date {day} failed in task {task}"
        + (f" (try {ti.try_number})." if ti is not None else "."),
        (f"The warehouse of business date {day} was published; {task} did not finish after it."
         if _after_publish(context, task) else "The published warehouse is still the previous night's."),
        "",
        f"Error:\n{error}",
        "",
        f"File named in the error: {named or 'none'}",
        f"Task log: {log_file or 'unknown'}",
    ]
    if ti is not None:
        try:
            lines.append(f"Task log in the Airflow UI: {ti.log_url}")
        except Exception:  # noqa: BLE001 - the URL is a convenience
            pass
    lines += [f"Run: {DAG_ID} / {run_id}", f"Reason: {context.get('reason', 'task_failure')}", "",
              f"When the cause is fixed: make run DATE={day}"]
    return f"[clearance_nightly] business date {day}: {task} failed", "\n".join(lines)


def night_failed(context) -> None:
    """DAG-level on_failure_callback: mail the operators."""
    subject, body = failure_notice(context)
    send(subject, body)


async def night_not_published(context: dict, deadline: str) -> None:
    """DeadlineAlert callback: the night was not published by `deadline` (Beijing time).

    Only scheduled runs have the deadline: a backfill or a hand run is being watched by whoever
    started it, and its logical date is long past.
    """
    import asyncio

    dag_run = context.get("dag_run") or {}
    if run_type_of(dag_run) != "scheduled":
        return
    day = business_date_of_run(dag_run)
    # Airflow keeps the deadline until the whole run succeeds: a night that published and is still
    # writing its dashboard or reports (or failed after publishing) must not be reported unpublished
    from clearance.config import settings
    from clearance.state import published_business_date

    published = await asyncio.to_thread(published_business_date, settings())
    if published not in (None, "unknown") and published >= str(day):
        log.info("deadline of business date %s passed after the warehouse was published (%s): no mail", day, published)
        return
    subject = f"[clearance_nightly] business date {day} not published by {deadline} Beijing time"
    body = "\n".join([
        f"The nightly clearance run for business date {day} had not published the warehouse by {deadline} "
        "Beijing time. Analysts still see the night before.",
        f"Run: {DAG_ID} / {dag_run.get('dag_run_id') or dag_run.get('run_id')}, state {dag_run.get('state')}.",
        "It may still be waiting for the delivery (its MANIFEST.json) or for an earlier night; if it "
        "failed, a failure notice was sent as well.",
    ])
    await asyncio.to_thread(send, subject, body)
