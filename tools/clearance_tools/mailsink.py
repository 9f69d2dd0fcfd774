"""A local SMTP server that writes every mail it receives as an .eml file (for the demo and tests).

    python -m clearance_tools.mailsink --dir warehouse/mail --port 8025

Open the .eml files with any mail client. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import itertools
import signal
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


def start(folder: Path, port: int) -> tuple[Controller, EmlWriter]:
    handler = EmlWriter(folder)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, type=Path, help="folder for the .eml files")
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args(argv)
    controller, _ = start(args.dir, args.port)
    print(f"mailsink: 127.0.0.1:{args.port}, writing to {args.dir}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
