"""How the nightly DAG runs under Airflow: which night a run is, where catch-up begins, waiting for
the delivery and for the run's turn, and which failures are worth a retry.

Only Airflow's Task SDK is imported here (the DAG file imports this module when it is parsed); the
pipeline's heavy libraries are imported inside the tasks.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
from datetime import date, datetime, time, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy
from airflow.triggers.base import BaseTrigger, TriggerEvent

from clearance.contract import BEIJING

log = logging.getLogger(__name__)

DAG_ID = "clearance_nightly"
RUN_AT = time(2, 0)  # the nightly run starts at 02:00 Beijing time for the business date before
UNFINISHED = ["queued", "running"]


def _field(obj: Any, name: str):
    """A field of a DagRun, whether Airflow hands over a model or (to deadline callbacks) a dict."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _aware(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def run_type_of(dag_run) -> str:
    """`scheduled`, `manual`, `backfill`, ... (Airflow hands over an enum, a string or JSON)."""
    value = _field(dag_run, "run_type")
    return str(getattr(value, "value", value) or "").lower()


def business_date_of_run(dag_run) -> str:
    """The Beijing business date a run processes.

    `{"business_date": "YYYY-MM-DD"}` in the run's conf (hand runs: `make run`, `make backfill`
    is by logical date) wins; otherwise the day before the run's logical date in Beijing, or, for
    a run triggered without a logical date, the day before the time it was triggered for.
    """
    from clearance.pipeline import business_date_for

    conf = _field(dag_run, "conf") or {}
    if conf.get("business_date"):
        return date.fromisoformat(str(conf["business_date"])).isoformat()
    return business_date_for(_aware(_field(dag_run, "logical_date")) or _aware(_field(dag_run, "run_after")))


def scheduled_logical_date(business_date: date) -> datetime:
    """The scheduled run for business date D is at 02:00 Beijing time on D+1."""
    return datetime.combine(business_date + timedelta(days=1), RUN_AT, tzinfo=BEIJING)


CATCHUP_FILE = "clearance_catchup_from"  # in AIRFLOW_HOME: where the deployment's catch-up begins when not set


def first_night_kept(home: str | os.PathLike, now: datetime | None = None) -> str:
    """The night before the first time the DAG was parsed on this Airflow home, kept in a file there
    (written on that first parse): the catch-up's beginning when CLEARANCE_CATCHUP_FROM is not set."""
    kept = os.path.join(home, CATCHUP_FILE)
    try:
        with open(kept, encoding="utf-8") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        first = ((now or datetime.now(BEIJING)).astimezone(BEIJING).date() - timedelta(days=1)).isoformat()
        os.makedirs(home, exist_ok=True)
        with open(kept, "w", encoding="utf-8") as handle:
            handle.write(first + "\n")
        return first


def catchup_start(now: datetime | None = None) -> datetime:
    """Where the scheduler's catch-up begins: the run of business date CLEARANCE_CATCHUP_FROM.

    The scheduler runs every night from there on that has not run, oldest first (after downtime
    too). Unset, it begins with the night before the DAG was first parsed on this Airflow home
    (kept in $AIRFLOW_HOME/clearance_catchup_from), so a new deployment does not start a year of
    runs and a scheduler that was down runs every night it missed.

    Airflow creates no task for a run whose logical date is before the DAG's start date: older
    nights run as backfills or as runs without a logical date (`make backfill`, `make run`).
    """
    first = os.environ.get("CLEARANCE_CATCHUP_FROM", "").strip()
    if not first:
        first = first_night_kept(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), now)
    day = date.fromisoformat(first)
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=BEIJING)


def publish_deadline() -> tuple[str, timedelta]:
    """The Beijing time of day by which a night must be published (CLEARANCE_PUBLISH_DEADLINE), and how
    long that is after the 02:00 start."""
    text = os.environ.get("CLEARANCE_PUBLISH_DEADLINE", "08:00").strip()
    deadline = time.fromisoformat(text)
    interval = datetime.combine(date.min, deadline) - datetime.combine(date.min, RUN_AT)
    if interval <= timedelta(0):
        raise ValueError(f"CLEARANCE_PUBLISH_DEADLINE={text}: must be later than {RUN_AT:%H:%M}, the nightly start")
    return f"{deadline:%H:%M}", interval


def _seconds(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class _Waiting(BaseOperator):
    """A task that waits deferred, in the triggerer, checking every `poke_interval` seconds for up to `timeout`."""

    template_fields = ("business_date",)

    def __init__(self, *, business_date, poke_interval: float, timeout: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.business_date, self.poke_interval, self.timeout = business_date, poke_interval, timeout


class DeliverySensor(_Waiting):
    """Waits for `<inbox>/<D>/MANIFEST.json`, which the exporter writes last.

    A scheduled run waits for it in the triggerer (deferred: no worker slot, no process), logging
    the path; a run started by hand or by a backfill does not wait and fails at once naming it.
    """

    def execute(self, context) -> None:
        from airflow.providers.standard.triggers.file import FileTrigger

        from clearance.pipeline import manifest_path

        path = manifest_path(self.business_date)
        if path.exists():
            log.info("the delivery of business date %s is complete: %s", self.business_date, path)
            return
        if run_type_of(context["dag_run"]) != "scheduled":
            from clearance.ingest import DeliveryError

            raise DeliveryError(str(path), f"MANIFEST.json is missing: no delivery for business date "
                                           f"{self.business_date} (a run started by hand does not wait for one)")
        log.info("waiting for %s (the exporter writes it last; checked every %d s, for up to %s)",
                 path, self.poke_interval, timedelta(seconds=self.timeout))
        self.defer(trigger=FileTrigger(filepath=glob.escape(str(path)), poke_interval=self.poke_interval),
                   method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context, event=None) -> None:
        log.info("the delivery of business date %s is complete", self.business_date)


def _night_before(dag_run) -> str | None:
    """The logical date of the scheduled run of the night before this run's, when it has a logical date."""
    logical = _aware(_field(dag_run, "logical_date"))
    return (logical - timedelta(days=1)).isoformat() if logical else None


def join_queue(dag_run, run_id: str) -> str:
    """The run's business date; the run stands in the pipeline's queue from now on (clearance.run_order)."""
    from clearance.config import settings
    from clearance.run_order import register, state_folder

    day = business_date_of_run(dag_run)
    conf = _field(dag_run, "conf") or {}
    register(state_folder(settings()), run_id, day, conf.get("hand_run_lock"))
    return day


def who_is_ahead(run_id: str, business_date: str, night_before: str | None, hand_run_lock: str | None) -> str | None:
    """None when this run may go on (and then it holds the turn); else what it waits for.

    Called from the task and from the triggerer: both talk to Airflow through the Task SDK.
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    from clearance.config import settings
    from clearance.run_order import state_folder, take_turn

    def unfinished(**where) -> bool:
        return RuntimeTaskInstance.get_dr_count(dag_id=DAG_ID, states=UNFINISHED, **where) > 0

    if night_before and unfinished(logical_dates=[datetime.fromisoformat(night_before)]):
        return f"the run of the night before (logical date {night_before}) to finish"
    from clearance.pipeline import manifest_path

    ahead = take_turn(state_folder(settings()), run_id, business_date,
                      run_finished=lambda other: not unfinished(run_ids=[other]), hand_run_lock=hand_run_lock,
                      ready=lambda turn: manifest_path(turn.business_date).exists())
    return None if ahead is None else f"{ahead.describe()} to finish"


class NightTurnTrigger(BaseTrigger):
    """Runs in the triggerer: checks every few seconds whether it is the run's turn."""

    def __init__(self, run_id: str, business_date: str, night_before: str | None, hand_run_lock: str | None,
                 poke_interval: float) -> None:
        super().__init__()
        self.run_id, self.business_date, self.night_before = run_id, business_date, night_before
        self.hand_run_lock, self.poke_interval = hand_run_lock, poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("clearance.orchestration.NightTurnTrigger", {
            "run_id": self.run_id, "business_date": self.business_date, "night_before": self.night_before,
            "hand_run_lock": self.hand_run_lock, "poke_interval": self.poke_interval})

    async def run(self):
        from asgiref.sync import sync_to_async

        told = None
        while True:
            ahead = await sync_to_async(who_is_ahead)(self.run_id, self.business_date, self.night_before,
                                                     self.hand_run_lock)
            if ahead is None:
                yield TriggerEvent({"turn": self.run_id})
                return
            if ahead != told:
                self.log.info("business date %s waits for %s", self.business_date, ahead)
                told = ahead
            await asyncio.sleep(self.poke_interval)


class NightTurnSensor(_Waiting):
    """The run's turn to write the state: one night at a time, in business-date order (clearance.run_order).

    Waits in the triggerer. A hand run outside the deployment (conf `wait: false`) does not wait:
    it fails at once naming the run ahead of it.
    """

    def execute(self, context) -> None:
        from clearance.run_order import NightInProgressError

        dag_run = context["dag_run"]
        conf = _field(dag_run, "conf") or {}
        args = (context["run_id"], self.business_date, _night_before(dag_run), conf.get("hand_run_lock"))
        ahead = who_is_ahead(*args)
        if ahead is None:
            log.info("business date %s: this run's turn to write the state", self.business_date)
            return
        if conf.get("wait") is False:
            raise NightInProgressError(f"business date {self.business_date} waits for {ahead}; this run does not wait: "
                                       "nothing was changed, run it again when that one has finished")
        log.info("business date %s waits for %s (checked every %d s)", self.business_date, ahead, self.poke_interval)
        self.defer(trigger=NightTurnTrigger(*args, poke_interval=self.poke_interval),
                   method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context, event=None) -> None:
        log.info("business date %s: this run's turn to write the state", self.business_date)


class NightRetryPolicy(RetryPolicy):
    """Bad input fails at once (a retry reads the same files); transient faults retry after a delay.

    Exceptions are matched by class name along their hierarchy, so the DAG file imports nothing
    heavy to name them. Anything else (a killed task, an unexpected error) retries as configured.
    """

    NO_RETRY = {"DeliveryError": "bad input: fix or re-deliver the files, then rerun the night",
                "AccountingError": "rows do not add up or too many are bad: look at the file, then rerun",
                "NightInProgressError": "another run holds the pipeline's state",
                "StateUnusableError": "the state file is missing, damaged or of another layout: run make recover",
                "ModelTestError": "a model broke one of its tests: look at the model and the rows named, then rerun"}
    TRANSIENT = {"StateInUseError", "SMTPException", "ConnectionError", "TimeoutError"}

    def __init__(self, retry_delay: timedelta) -> None:
        self.retry_delay = retry_delay

    def evaluate(self, exception, try_number, max_tries, context=None) -> RetryDecision:
        names = [c.__name__ for c in type(exception).__mro__]
        for name in names:
            if name in self.NO_RETRY:
                return RetryDecision.fail(self.NO_RETRY[name])
        if self.TRANSIENT.intersection(names):
            return RetryDecision.retry(self.retry_delay, reason=f"transient fault ({type(exception).__name__})")
        return RetryDecision.default()


def task_defaults() -> dict:
    """default_args of the nightly DAG: retries and their policy, from the environment."""
    from clearance.notify import record_task_error

    delay = timedelta(seconds=_seconds("CLEARANCE_RETRY_DELAY_SECONDS", 300))
    return {"retries": int(os.environ.get("CLEARANCE_TASK_RETRIES", "2")), "retry_delay": delay,
            "retry_policy": NightRetryPolicy(delay), "on_failure_callback": record_task_error}


def turn_poke_seconds() -> float:
    return _seconds("CLEARANCE_TURN_POKE_SECONDS", 20)
