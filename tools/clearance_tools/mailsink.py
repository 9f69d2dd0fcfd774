"""A local SMTP server that writes every mail it receives as an .eml file (for the demo and tests).

    python -m clearance_tools.mailsink --dir warehouse/mail [--port 0] [--port-file PATH]
    python -m clearance_tools.mailsink --dir warehouse/mail --check WAREHOUSE

Open the .eml files with any mail client. Listens on 127.0.0.1 only. Port 0 (the default) takes a
free port; the port is printed and, with --port-file, written to that file once the server is up.
A port in use ends the command at once, naming the port.

--check tells whether the digests reached this folder: it fails when the warehouse has alerts
still unsent or stalled shipments were alerted while no mail arrived.
"""

from __future__ import annotations

import argparse
import errno
import itertools
import signal
import socket
import sys
import threading
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller


class EmlWriter:
    """aiosmtpd handler: one .eml file per message, named in order of arrival."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._numbers = itertools.count(len(list(self.folder.glob("*.eml"))) + 1)
        self.received: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        number = next(self._numbers)
        message = message_from_bytes(envelope.content, policy=policy.default)
        (self.folder / f"{number:04d}.eml").write_bytes(envelope.content)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class PortInUseError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(folder: Path, port: int = 0) -> tuple[Controller, EmlWriter]:
    """Start the server on `port`, or on a free port when it is 0 (controller.port says which)."""
    handler = EmlWriter(folder)
    for attempt in range(5):
        chosen = port or free_port()
        with socket.socket() as probe:  # aiosmtpd reports a taken port only as a time-out
            try:
                probe.bind(("127.0.0.1", chosen))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                if port:
                    raise PortInUseError(f"mailsink: port {port} on 127.0.0.1 is in use; choose another "
                                         "(DEMO_SMTP_PORT=...) or 0 for a free one") from exc
                continue  # a free port taken meanwhile: pick another
        controller = Controller(handler, hostname="127.0.0.1", port=chosen)
        controller.start()
        return controller, handler
    raise PortInUseError("mailsink: found no free port on 127.0.0.1")


def check_delivered(folder: Path, warehouse: Path) -> str | None:
    """Why the demo's digests did not all arrive, or None when they did."""
    import duckdb

    mails = len(list(Path(folder).glob("*.eml")))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        [(alerts, unsent)] = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE status IN ('pending', 'ended_unsent')) FROM alert_log").fetchall()
        errors = [e for (e,) in con.execute(
            "SELECT DISTINCT error FROM alert_digests WHERE status = 'unsent' AND error IS NOT NULL").fetchall()]
    if unsent:
        return f"{unsent} of {alerts} stalled-shipment alerts were never mailed ({'; '.join(errors[:3]) or 'no error recorded'})"
    if alerts and not mails:
        return f"{alerts} stalled-shipment alerts, but no digest reached {folder}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clearance_tools.mailsink", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, type=Path, help="folder for the .eml files")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 takes a free one")
    parser.add_argument("--port-file", type=Path, help="write the port here once the server listens")
    parser.add_argument("--check", type=Path, metavar="WAREHOUSE", help="check the digests arrived, then exit")
    args = parser.parse_args(argv)
    if args.check:
        problem = check_delivered(args.dir, args.check)
        if problem:
            print(f"mailsink: {problem}", file=sys.stderr)
            return 1
        return 0
    try:
        controller, _ = start(args.dir, args.port)
    except PortInUseError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"mailsink: 127.0.0.1:{controller.port}, writing to {args.dir}", flush=True)
    if args.port_file:
        args.port_file.write_text(str(controller.port), encoding="utf-8")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
