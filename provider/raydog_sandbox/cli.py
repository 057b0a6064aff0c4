"""The sandbox's command line: ``python -m raydog_sandbox [options]``, also run as ``raydog sandbox``.

It serves until Ctrl-C or SIGTERM. The URL is always the first line on stdout, so a caller
that asked for ``--port 0`` reads the port from there.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .server import MODES, SandboxStartError, build_sandbox, serve_in_background
from .strictness import Strictness


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `raydog sandbox`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080,
                        help="port to listen on; 0 picks a free one (default 8080). The URL is the first line "
                             "printed on stdout")
    parser.add_argument("--mode", choices=MODES, default="simulate",
                        help="simulate: tasks execute until ended, no processes; exec: local nodes run real tasks")
    parser.add_argument("--provision-delay", type=float, default=1.0, metavar="SECONDS",
                        help="time from provisioning to nodes registering (default 1)")
    parser.add_argument("--task-start-delay", type=float, default=0.5, metavar="SECONDS",
                        help="time from a task's allocation to EXECUTING (default 0.5)")
    parser.add_argument("--api-key", action="append", default=[], metavar="ID:SECRET",
                        help="an accepted application key (repeatable); default sandbox:sandbox-secret")
    parser.add_argument("--faults", default=None, metavar="SPEC",
                        help="fault injection, e.g. 5xx=0.1,429=0.05,latency=0-300ms,drop=0.05,seed=42")
    parser.add_argument("--max-nodes", type=int, default=None, metavar="N",
                        help="refuse provisioning beyond N live nodes (quota exceeded)")
    parser.add_argument("--template", action="append", default=[], metavar="NS/NAME[=TYPE:VCPUS:RAM]",
                        help="add a compute requirement template to the built-in catalogue (repeatable)")
    parser.add_argument("--userdata", action="store_true",
                        help="run each pool's userdata when its nodes boot (exec mode)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="where exec-mode nodes keep their files (default: a new temporary directory)")
    parser.add_argument("--strict", action="store_true",
                        help="take the stricter reading wherever YellowDog's rule is unknown (docs/sandbox.md)")
    parser.add_argument("--node-shutdown-delay", type=float, default=None, metavar="SECONDS",
                        help="a node shutdown ends the node this much later and leaves the pool's target alone "
                             "(strict default 2)")
    parser.add_argument("--terminate-delay", type=float, default=None, metavar="SECONDS",
                        help="instances stay TERMINATING this long (strict default 1)")
    parser.add_argument("--rate-limit", default=None, metavar="N/s",
                        help="per-key request rate limit: 429 with Retry-After beyond it")
    parser.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"),
                        help="log level on stderr (default warning)")


def run(args: argparse.Namespace) -> int:
    """`raydog sandbox`: serve until Ctrl-C or SIGTERM."""
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.userdata and args.mode != "exec":
        print("raydog sandbox: --userdata only has an effect in --mode exec", file=sys.stderr)
    try:
        api, scheduler, server, sock = build_sandbox(
            args.host, args.port, args.mode, args.provision_delay, args.task_start_delay, args.api_key,
            args.faults, args.max_nodes, None, args.template, args.userdata, args.data_dir,
            Strictness.of(args.strict, args.node_shutdown_delay, args.terminate_delay), args.rate_limit)
    except SandboxStartError as error:
        print(f"raydog sandbox: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        running = serve_in_background(api, scheduler, server, sock)
    except SandboxStartError as error:
        print(f"raydog sandbox: {error}", file=sys.stderr)
        return 1
    try:
        print(running.url, flush=True)
        keys = ", ".join(f"{key_id}:{secret}" for key_id, secret in running.api_keys.items())
        print(f"raydog sandbox ({args.mode}{', strict' if args.strict else ''}) accepts API keys: {keys}; faults: {api.faults.spec.describe()}",
              file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        running.stop()  # stops the server, the clock and the runtime (no node process is left)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m raydog_sandbox``."""
    parser = argparse.ArgumentParser(
        prog="raydog sandbox", description="Run a local YellowDog-compatible platform (API + scheduler + nodes).")
    add_arguments(parser)
    return run(parser.parse_args(argv))
