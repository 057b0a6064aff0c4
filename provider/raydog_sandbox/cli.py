"""The sandbox's command line: ``python -m raydog_sandbox [options]``, also run as ``raydog sandbox``.

It serves until Ctrl-C or SIGTERM. The URL is always the first line on stdout, so a caller
that asked for ``--port 0`` reads the port from there.

Application keys come from RAYDOG_SANDBOX_API_KEY_ID / RAYDOG_SANDBOX_API_KEY_SECRET, from
``--api-key-file`` or (visible to every user in ``ps``) from ``--api-key``; no secret is
ever printed, only key ids.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import stat
import sys
import threading
from collections.abc import Mapping

from .server import DEFAULT_API_KEY, MODES, SandboxStartError, build_sandbox, key_problem, serve_in_background
from .strictness import Strictness

ENV_KEY_ID = "RAYDOG_SANDBOX_API_KEY_ID"
ENV_KEY_SECRET = "RAYDOG_SANDBOX_API_KEY_SECRET"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `raydog sandbox`."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1); other than loopback needs --allow-remote")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host other machines can reach (needs a key of your own)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME[:PORT]",
                        help="also answer requests whose Host header is NAME (at the sandbox's port) or NAME:PORT, "
                             "e.g. behind a proxy or tunnel (repeatable)")
    parser.add_argument("--port", type=int, default=8080,
                        help="port to listen on; 0 picks a free one (default 8080). The URL is the first line "
                             "printed on stdout")
    parser.add_argument("--mode", choices=MODES, default="simulate",
                        help="simulate: tasks execute until ended, no processes; exec: local nodes run real tasks")
    parser.add_argument("--provision-delay", type=float, default=1.0, metavar="SECONDS",
                        help="time from provisioning to nodes registering (default 1)")
    parser.add_argument("--task-start-delay", type=float, default=0.5, metavar="SECONDS",
                        help="time from a task's allocation to EXECUTING (default 0.5)")
    parser.add_argument("--api-key-file", action="append", default=[], metavar="PATH",
                        help="accept the application keys in PATH, one ID:SECRET a line (repeatable)")
    parser.add_argument("--api-key", action="append", default=[], metavar="ID:SECRET",
                        help=f"an accepted application key (repeatable); visible in ps, prefer --api-key-file or "
                             f"{ENV_KEY_ID}/{ENV_KEY_SECRET}. Default: the published key sandbox:sandbox-secret")
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
    if args.api_key:
        print(f"raydog sandbox: --api-key shows the secret to every user of this machine (ps); use "
              f"--api-key-file or {ENV_KEY_ID}/{ENV_KEY_SECRET}", file=sys.stderr)
    try:
        keys = api_keys(args.api_key, args.api_key_file, os.environ)
        api, scheduler, server, sockets = build_sandbox(
            args.host, args.port, args.mode, args.provision_delay, args.task_start_delay, keys,
            args.faults, args.max_nodes, None, args.template, args.userdata, args.data_dir,
            args.allow_remote, args.allow_host,
            Strictness.of(args.strict, args.node_shutdown_delay, args.terminate_delay), args.rate_limit)
    except SandboxStartError as error:
        print(f"raydog sandbox: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        running = serve_in_background(api, scheduler, server, sockets)
    except SandboxStartError as error:
        print(f"raydog sandbox: {error}", file=sys.stderr)
        return 1
    try:
        print(running.url, flush=True)
        if running.node_url:
            print(f"raydog sandbox: exec nodes reach the API at {running.node_url}", file=sys.stderr, flush=True)
        print(f"raydog sandbox ({args.mode}{', strict' if args.strict else ''}) accepts API keys: "
              f"{describe_keys(running.api_keys)}; faults: {api.faults.spec.describe()}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        running.stop()  # stops the server, the clock and the runtime (no node process is left)
    return 0


def api_keys(command_line: list[str], files: list[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The keys of --api-key, every --api-key-file and the environment; empty means the default key.

    Errors name the source (the option, the file and line, the variable), never the secret.
    """
    keys: dict[str, str] = {}
    for n, entry in enumerate(command_line, 1):
        keys.update([_key(entry, f"--api-key number {n}")])
    for path in files:
        keys.update(read_api_key_file(path))
    key_id, secret = environ.get(ENV_KEY_ID), environ.get(ENV_KEY_SECRET)
    if (key_id is None) != (secret is None):
        missing = ENV_KEY_SECRET if secret is None else ENV_KEY_ID
        raise SandboxStartError(f"{missing} is not set; set both {ENV_KEY_ID} and {ENV_KEY_SECRET}, or neither")
    if key_id is not None and secret is not None:
        problem = key_problem(key_id, secret)
        if problem:
            raise SandboxStartError(f"{ENV_KEY_ID}/{ENV_KEY_SECRET}: {problem}")
        keys[key_id] = secret
    return keys


def read_api_key_file(path: str) -> dict[str, str]:
    """Keys of a file of ``ID:SECRET`` lines (blank lines and ``#`` comments skipped)."""
    try:
        with open(path, encoding="utf-8") as file:
            mode = os.fstat(file.fileno()).st_mode
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise SandboxStartError(f"--api-key-file {path}: cannot read it ({type(error).__name__})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"raydog sandbox: --api-key-file {path} is readable by other users; chmod 600 it", file=sys.stderr)
    keys = dict(_key(line.strip(), f"--api-key-file {path} line {n}") for n, line in enumerate(lines, 1)
                if line.strip() and not line.lstrip().startswith("#"))
    if not keys:
        raise SandboxStartError(f"--api-key-file {path} holds no key; write one ID:SECRET a line")
    return keys


def _key(entry: str, where: str) -> tuple[str, str]:
    key_id, sep, secret = entry.partition(":")
    problem = key_problem(key_id, secret) if sep else "must be ID:SECRET"
    if problem:
        raise SandboxStartError(f"{where}: {problem}")
    return key_id, secret


def describe_keys(keys: dict[str, str]) -> str:
    """Key ids only: a secret is never printed."""
    if keys == dict([DEFAULT_API_KEY]):
        return f"{DEFAULT_API_KEY[0]} (the default key; its secret is in docs/sandbox.md)"
    return ", ".join(sorted(keys)) + " (secrets not shown)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m raydog_sandbox``."""
    parser = argparse.ArgumentParser(
        prog="raydog sandbox", description="Run a local YellowDog-compatible platform (API + scheduler + nodes).",
        epilog=f"Environment: {ENV_KEY_ID} and {ENV_KEY_SECRET} give one accepted application key "
               "(kept out of ps, unlike --api-key). Secrets are never printed.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
