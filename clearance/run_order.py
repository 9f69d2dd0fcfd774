"""One night at a time, in business-date order, whatever started the runs.

The scheduler keeps scheduled and hand-triggered runs to one at a time (`max_active_runs=1`), but
a backfill runs beside them with its own limit, and a hand run outside the deployment (`make run`
with no scheduler up) knows nothing of either. So every run takes its turn here before it touches
the state: the task `wait_for_earlier_nights` registers the run with its business date in a small
queue file beside the state, and the run goes on only when no other run holds the turn and no
waiting run has an earlier business date (then the earlier queued first). The turn is held until
the run has finished in Airflow, successfully or not (a killed task fails its run too), so the
next run cannot start before the previous one's last task.

The queue is a JSON file guarded by a POSIX lock (`fcntl.lockf`), like DuckDB's own lock on the
state file: on shared storage it needs POSIX locks across machines (NFSv4 has them).

A hand run under `dag.test()` (no deployment) holds the hand-run lock for as long as its process
lives; a turn it holds is given up when that lock is free, so a killed hand run never blocks the
nights after it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

QUEUE_NAME = "night_queue.json"
HAND_RUN_LOCK_NAME = "hand_run.lock"

# Hand-run locks this process holds. POSIX locks belong to the process, and closing any descriptor
# of the file drops them: this process never probes a lock it holds.
_HELD: set[str] = set()


class NightInProgressError(RuntimeError):
    """Another run holds the pipeline's turn and this run may not wait (a hand run without the deployment)."""


@dataclass(frozen=True)
class Turn:
    run_id: str
    business_date: str
    queued_at: float
    hand_run_lock: str | None = None  # the lock file of a hand run's process, when it is one

    def order(self) -> tuple:
        return self.business_date, self.queued_at, self.run_id

    def describe(self) -> str:
        return f"business date {self.business_date} (run {self.run_id})"


def state_folder(settings) -> Path:
    return settings.state_db.parent


@contextmanager
def _locked(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / (QUEUE_NAME + ".lock"), "a+") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield folder / QUEUE_NAME
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def _read(path: Path) -> tuple[Turn | None, list[Turn]]:
    if not path.exists():
        return None, []
    data = json.loads(path.read_text(encoding="utf-8"))
    holder = Turn(**data["holder"]) if data.get("holder") else None
    return holder, [Turn(**w) for w in data.get("waiting", [])]


def _write(path: Path, holder: Turn | None, waiting: list[Turn]) -> None:
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps({"holder": holder and holder.__dict__, "waiting": [w.__dict__ for w in waiting]},
                                  indent=1), encoding="utf-8")
    os.replace(scratch, path)


def hand_run_alive(lock_file: str) -> bool:
    """Whether the hand run's process still holds its lock (the kernel drops it when the process dies)."""
    try:
        with open(lock_file, "a+") as handle:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(handle, fcntl.LOCK_UN)
            return False
    except OSError:
        return True


def register(folder: Path, run_id: str, business_date: str, hand_run_lock: str | None = None) -> None:
    """Put a run in the queue as soon as it starts (its first task), before it asks for the turn.

    Runs started together then all stand in the queue before any of them asks, so the earliest
    business date goes first even when a later one reaches the turn a moment sooner (runs without
    a logical date are not ordered by the scheduler)."""
    with _locked(folder) as path:
        holder, waiting = _read(path)
        if (holder is None or holder.run_id != run_id) and all(w.run_id != run_id for w in waiting):
            waiting.append(Turn(run_id, business_date, time.time(), hand_run_lock))
            _write(path, holder, waiting)


def take_turn(folder: Path, run_id: str, business_date: str, run_finished: Callable[[str], bool],
              hand_run_lock: str | None = None, ready: Callable[[Turn], bool] = lambda turn: True) -> Turn | None:
    """Take the pipeline's turn for this run if it is its turn; else return the run ahead of it.

    `run_finished(run_id)` tells whether a run has ended in Airflow (or is gone); runs that have are
    dropped from the queue. `ready(turn)` tells whether a waiting run could go now (its delivery is
    complete): one still waiting for its delivery holds no later night back.
    """
    with _locked(folder) as path:
        holder, waiting = _read(path)

        def gone(turn: Turn) -> bool:
            if turn.run_id == run_id:
                return False
            if turn.hand_run_lock and turn.hand_run_lock not in _HELD and not hand_run_alive(turn.hand_run_lock):
                return True
            return run_finished(turn.run_id)

        if holder is not None and gone(holder):
            holder = None
        waiting = [w for w in waiting if not gone(w)]
        if holder is not None and holder.run_id == run_id:  # asked again (a retried task): still ours
            _write(path, holder, waiting)
            return None
        me = next((w for w in waiting if w.run_id == run_id), None)
        if me is None:
            me = Turn(run_id, business_date, time.time(), hand_run_lock)
            waiting.append(me)
        ahead = holder if holder is not None else min(
            (w for w in waiting if w.run_id == run_id or ready(w)), key=Turn.order)
        if ahead.run_id == run_id:
            holder, ahead = me, None
            waiting = [w for w in waiting if w.run_id != run_id]
        _write(path, holder, waiting)
        return ahead


def holder(folder: Path) -> Turn | None:
    with _locked(folder) as path:
        return _read(path)[0]


@contextmanager
def hand_run_lock(folder: Path, business_date: str):
    """Held by a hand run (`make run` without the deployment) for its whole process: one at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / HAND_RUN_LOCK_NAME
    handle = open(path, "a+")
    try:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            raise NightInProgressError(
                f"another hand run of clearance_nightly is in progress ({handle.read().strip() or 'unknown'}); "
                "nothing was changed: run again when it has finished") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"business date {business_date}, process {os.getpid()}")
        handle.flush()
        _HELD.add(str(path))
        yield str(path)
    finally:
        _HELD.discard(str(path))
        handle.close()
