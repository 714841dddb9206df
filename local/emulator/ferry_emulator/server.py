"""Command line entry point: serve moto (patched unless --plain) on one port."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from ferry_emulator.lifetime import exit_on_stdin_eof

_T0 = time.monotonic()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ferry_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--plain", action="store_true", help="unpatched moto (control endpoints still answer)")
    parser.add_argument("--copy-seconds", type=float, default=2.0, help="how long copies stay pending")
    parser.add_argument("--fsr-step-seconds", type=float, default=2.0, help="length of each FSR state step")
    parser.add_argument(
        "--no-stdin-watch",
        action="store_true",
        help="do not exit when stdin reaches EOF (for running by hand with stdin closed)",
    )
    return parser.parse_args(argv)


def _exit_now(_signum: int, _frame: Any) -> None:
    os._exit(0)


def _share_boto3_session() -> None:
    """Startup time: moto's modules call ``boto3.Session()`` at import time only to list
    Regions, each new session re-reading botocore's data files (~0.1 s apiece). Hand
    them one shared session when called without arguments."""
    import boto3

    original = boto3.Session
    shared: list[Any] = []

    def session(*args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return original(*args, **kwargs)
        if not shared:
            shared.append(original())
        return shared[0]

    boto3.Session = session  # type: ignore[assignment,misc]


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    ready_out = sys.stdout
    sys.stdout = sys.stderr  # stdout carries the READY line and nothing else

    signal.signal(signal.SIGTERM, _exit_now)
    signal.signal(signal.SIGINT, _exit_now)
    if not args.no_stdin_watch:
        threading.Thread(target=exit_on_stdin_eof, name="stdin-watch", daemon=True).start()

    # Without this every EC2 Region starts with ~hundreds of canned AMIs and snapshots.
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _share_boto3_session()

    from werkzeug.serving import make_server

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    from . import state
    from .control import FerryMiddleware

    state.update_config({"copySeconds": args.copy_seconds, "fsrStepSeconds": args.fsr_step_seconds})

    on_request = None
    if not args.plain:
        from . import patches

        patches.apply_all()
        on_request = patches.settle_due

    moto_app = DomainDispatcherApplication(create_backend_app)
    app = FerryMiddleware(moto_app, on_request=on_request)
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    port = server.server_port
    # Where moto calls itself back (the patched Step Functions engine uses state.SELF_URL).
    os.environ.setdefault("MOTO_PORT", str(port))

    host = f"[{args.host}]" if ":" in args.host else args.host
    # The Step Functions engine calls the emulator here (patches/stepfunctions.py).
    loopback = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(args.host, host)
    state.SELF_URL = f"http://{loopback}:{port}"
    ready_out.write(f"FERRY_EMULATOR_READY http://{host}:{port}\n")
    ready_out.flush()
    if os.environ.get("FERRY_EMULATOR_TIMING"):
        print(f"ferry_emulator: ready after {time.monotonic() - _T0:.3f}s", file=sys.stderr)
    server.serve_forever()
