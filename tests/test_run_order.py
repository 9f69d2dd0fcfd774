"""The pipeline's turn: one run at a time, the earliest business date first, held until the run has finished."""

from __future__ import annotations

import subprocess
import sys


from clearance.run_order import hand_run_lock, take_turn


def test_the_earliest_waiting_night_goes_next_and_a_holder_keeps_its_turn(tmp_path):
    finished = set()
    done = finished.__contains__
    assert take_turn(tmp_path, "run-12", "2026-11-12", done) is None  # alone: its turn
    assert take_turn(tmp_path, "run-11", "2026-11-11", done).run_id == "run-12"  # an earlier night waits for it
    assert take_turn(tmp_path, "run-12", "2026-11-12", done) is None  # asked again: still its turn
    assert take_turn(tmp_path, "run-10", "2026-11-10", done).run_id == "run-12"
    finished.add("run-12")
    assert take_turn(tmp_path, "run-11", "2026-11-11", done).run_id == "run-10"  # the earliest waiting goes first
    assert take_turn(tmp_path, "run-10", "2026-11-10", done) is None
    finished.add("run-10")
    assert take_turn(tmp_path, "run-11", "2026-11-11", done) is None


def test_a_second_hand_run_fails_at_once_and_a_dead_one_gives_up_its_turn(tmp_path):
    with hand_run_lock(tmp_path, "2026-11-20"):
        other = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                                "from clearance.run_order import hand_run_lock\n"
                                "with hand_run_lock(Path(sys.argv[1]), '2026-11-21'): pass", str(tmp_path)],
                               capture_output=True, text=True)
        assert other.returncode == 1
        assert "another hand run of clearance_nightly is in progress (business date 2026-11-20" in other.stderr
    # a hand run that died holding the turn (its run never finished in Airflow) blocks nobody
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                    "from clearance.run_order import hand_run_lock, take_turn\n"
                    "with hand_run_lock(Path(sys.argv[1]), 'x') as lock: "
                    "take_turn(Path(sys.argv[1]), 'hand', '2026-11-20', lambda r: False, hand_run_lock=lock)",
                    str(tmp_path)], check=True)
    assert take_turn(tmp_path, "scheduled", "2026-11-21", lambda r: False) is None


def test_runs_started_together_go_in_date_order_whoever_asks_first(tmp_path):
    """Runs without a logical date (hand runs through the deployment) stand in the queue from their first
    task: the later night asking for the turn a moment sooner still waits for the earlier one, unless the
    earlier one is still waiting for its delivery."""
    from clearance.run_order import register

    finished, delivered = set(), {"2026-11-11", "2026-11-12"}
    done = finished.__contains__

    def ready(turn):
        return turn.business_date in delivered

    register(tmp_path, "run-12", "2026-11-12")
    register(tmp_path, "run-11", "2026-11-11")
    register(tmp_path, "run-13", "2026-11-13")  # its delivery has not come
    register(tmp_path, "run-11", "2026-11-11")  # registering again changes nothing
    assert take_turn(tmp_path, "run-12", "2026-11-12", done, ready=ready).run_id == "run-11"
    assert take_turn(tmp_path, "run-11", "2026-11-11", done, ready=ready) is None
    finished.add("run-11")
    assert take_turn(tmp_path, "run-12", "2026-11-12", done, ready=ready) is None
    finished.add("run-12")
    # an earlier night still waiting for its delivery holds no later one back
    register(tmp_path, "run-10", "2026-11-10")
    assert take_turn(tmp_path, "run-13", "2026-11-13", done, ready=ready) is None
