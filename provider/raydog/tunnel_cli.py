"""``raydog tunnel``: SSH tunnels from this machine to a cluster's head node, until Ctrl-C.

The head's address comes from ``--head`` or from a Terraform directory (``--terraform-dir``):
its ``terraform output -json`` with the raydog module's ``head_public_ip`` (and
``observability_private_ip``), as root outputs or inside an output holding the module's
outputs; failing that, the one ``raydog_head`` (and ``raydog_observability``) in its state,
as after ``raydog import-state``. It opens the Ray client
(10001) and dashboard (8265) tunnels to the head, and Grafana (3000) and Prometheus (9090)
on the observability node through the head; ``--forward`` adds more.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from raydog.settings import GRAFANA_PORT, PROMETHEUS_PORT, RAY_CLIENT_PORT, RAY_DASHBOARD_PORT

# Ports and names of the tunnels every cluster gets, and those of the observability node.
HEAD_TUNNELS = (("ray client", RAY_CLIENT_PORT, "ray://{}"), ("dashboard", RAY_DASHBOARD_PORT, "http://{}"))
OBSERVABILITY_TUNNELS = (("grafana", GRAFANA_PORT, "http://{}"), ("prometheus", PROMETHEUS_PORT, "http://{}"))


@dataclass(frozen=True)
class Tunnel:
    label: str
    local_port: int
    remote_host: str
    remote_port: int
    url: str = "{}"  # how to show the local address


class TerraformOutputError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--head", metavar="ADDRESS", help="public IP or host name of the head node")
    where.add_argument("--terraform-dir", metavar="DIR", type=Path,
                       help="a Terraform directory whose outputs give head_public_ip "
                       "(and observability_private_ip): the raydog module's outputs")
    parser.add_argument("--user", default=None, help="SSH user on the head (default: yd-agent)")
    parser.add_argument("--key", metavar="FILE", help="private key file (default: the SSH agent and ~/.ssh keys)")
    parser.add_argument("--key-password-env", metavar="VAR",
                        help="environment variable holding the private key's password")
    parser.add_argument("--password-env", metavar="VAR", help="environment variable holding the SSH password")
    parser.add_argument("--ssh-port", type=int, default=22, help="SSH port of the head (default: 22)")
    parser.add_argument("--observability-host", metavar="IP",
                        help="private IP of the observability node: adds Grafana (3000) and Prometheus (9090)")
    parser.add_argument("--no-observability", action="store_true",
                        help="no Grafana and Prometheus tunnels even if the cluster has an observability node")
    parser.add_argument("--forward", action="append", default=[], metavar="[LOCAL:][HOST:]PORT",
                        help="an extra tunnel: local port (0 = any free one) to HOST:PORT as the head sees it "
                        "(HOST defaults to localhost, the head itself); repeatable")
    parser.add_argument("--no-default-tunnels", action="store_true",
                        help="open only the --forward tunnels")
    parser.add_argument("--any-local-port", action="store_true",
                        help="bind free local ports instead of the remote port numbers (when 10001 or 8265 is taken)")
    parser.add_argument("--bind", default="localhost", help="local address to listen on (default: localhost)")
    parser.add_argument("--known-hosts", metavar="FILE", help="known_hosts file (default: ~/.ssh/known_hosts)")
    parser.add_argument("--strict-host-key-checking", action="store_true",
                        help="refuse a head whose host key is not in known_hosts (default: accept and warn)")


def run(args: argparse.Namespace) -> int:
    from raydog.tunnels import DEFAULT_SSH_USER, RayTunnels, SSHTunnelSpec, TunnelError

    logging.basicConfig(format="raydog tunnel: %(message)s", level=logging.WARNING)
    # paramiko logs a failed handshake (a port that does not speak SSH) with its traceback;
    # the TunnelError below already says what went wrong, in one line.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    try:
        head, observability = _addresses(args)
        tunnels = _tunnels(args, observability)
        password = _secret_from_env(args.password_env, "--password-env")
        key_password = _secret_from_env(args.key_password_env, "--key-password-env")
    except (TerraformOutputError, ValueError) as exc:
        return _fail(str(exc))
    if not tunnels:
        return _fail("no tunnels to open: give --forward, or drop --no-default-tunnels")
    ray_tunnels = RayTunnels(
        head, args.user or DEFAULT_SSH_USER, password=password, private_key_file=args.key,
        private_key_password=key_password,
        ray_tunnel_specs=[SSHTunnelSpec(args.bind, t.local_port, t.remote_host, t.remote_port) for t in tunnels],
        ssh_port=args.ssh_port, known_hosts_file=args.known_hosts,
        strict_host_key_checking=args.strict_host_key_checking,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        ray_tunnels.start_tunnels()
    except TunnelError as exc:
        return _fail(str(exc))
    try:
        print(f"Tunnels through {ray_tunnels.destination}:")
        for tunnel, (_, local) in zip(tunnels, ray_tunnels.local_addresses):
            where = "on the head" if tunnel.remote_host in ("localhost", "127.0.0.1") else "via the head"
            remote = f"{tunnel.remote_host}:{tunnel.remote_port} {where}"
            print(f"  {tunnel.label:<12} {tunnel.url.format(local):<28} -> {remote}")
        print("Press Ctrl-C to close them.", flush=True)
        while not stop.wait(1.0):
            if not ray_tunnels.is_active:
                return _fail(f"the SSH connection to {ray_tunnels.destination} was lost")
    finally:
        ray_tunnels.stop_tunnels()
    print("Tunnels closed.", flush=True)
    return 0


def _addresses(args: argparse.Namespace) -> tuple[str, str | None]:
    """(head address, observability node private IP or None)."""
    if args.head:
        return args.head, args.observability_host
    outputs = terraform_outputs(args.terraform_dir)
    if find_output(outputs, "head_public_ip") is None and find_output(outputs, "head_private_ip") is None:
        outputs = resources_as_outputs(args.terraform_dir)  # raw resources, e.g. after import-state
    head = find_output(outputs, "head_public_ip")
    if not head:
        private = find_output(outputs, "head_private_ip")
        if private:
            print(f"note: the head has no public IP; using its private IP {private}", file=sys.stderr)
            head = private
    if not head:
        raise TerraformOutputError(
            f"{args.terraform_dir} has no head_public_ip output and no single raydog_head in its state: "
            "output the raydog module's head_public_ip, or use --head")
    return head, args.observability_host or find_output(outputs, "observability_private_ip")


def _tunnels(args: argparse.Namespace, observability: str | None) -> list[Tunnel]:
    any_port = args.any_local_port
    tunnels = []
    if not args.no_default_tunnels:
        tunnels += [Tunnel(label, 0 if any_port else port, "localhost", port, url) for label, port, url in HEAD_TUNNELS]
        if observability and not args.no_observability:
            tunnels += [Tunnel(label, 0 if any_port else port, observability, port, url)
                        for label, port, url in OBSERVABILITY_TUNNELS]
    tunnels += [parse_forward(spec) for spec in args.forward]
    return tunnels


def parse_forward(spec: str) -> Tunnel:
    """``PORT``, ``LOCAL:PORT``, ``HOST:PORT`` or ``LOCAL:HOST:PORT`` as a tunnel."""
    parts = spec.split(":")
    try:
        if len(parts) == 1:
            local, host, port = int(parts[0]), "localhost", int(parts[0])
        elif len(parts) == 2 and parts[0].isdigit():
            local, host, port = int(parts[0]), "localhost", int(parts[1])
        elif len(parts) == 2:
            local, host, port = int(parts[1]), parts[0], int(parts[1])
        elif len(parts) == 3:
            local, host, port = int(parts[0]), parts[1], int(parts[2])
        else:
            raise ValueError
        if not (0 <= local <= 65535 and 0 < port <= 65535 and host):
            raise ValueError
    except ValueError:
        raise ValueError(f'--forward "{spec}" is not [LOCAL:][HOST:]PORT, such as 8080, 0:8080 or 0:10.0.0.5:3000')
    return Tunnel("forward", local, host, port)


def terraform_command() -> list[str]:
    """How to run Terraform: the one RAYDOG_TERRAFORM or PATH names, else the embedded one."""
    from raydog.terraform import terraform_on_path

    binary = terraform_on_path()
    return [binary] if binary else [sys.executable, "-m", "raydog.terraform"]


def terraform_outputs(directory: Path) -> dict:
    """``terraform output -json`` of ``directory``, as {name: value}."""
    if not directory.is_dir():
        raise TerraformOutputError(f"{directory} is not a directory")
    result = subprocess.run([*terraform_command(), "output", "-json", "-no-color"], cwd=directory,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise TerraformOutputError(f"terraform output -json failed in {directory}: "
                                   f"{(result.stderr or result.stdout).strip()}")
    try:
        raw = json.loads(result.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise TerraformOutputError(f"terraform output -json in {directory} did not print JSON: {exc}") from exc
    return {name: entry.get("value") for name, entry in (raw or {}).items()}


def resources_as_outputs(directory: Path) -> dict:
    """The module's output names, from the raydog_head and raydog_observability in the state."""
    result = subprocess.run([*terraform_command(), "show", "-json", "-no-color"], cwd=directory,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise TerraformOutputError(f"terraform show -json failed in {directory}: "
                                   f"{(result.stderr or result.stdout).strip()}")
    found: dict[str, list[dict]] = {"raydog_head": [], "raydog_observability": []}

    def walk(module: dict) -> None:
        for resource in module.get("resources", []):
            if resource.get("mode") == "managed" and resource.get("type") in found:
                found[resource["type"]].append(resource.get("values") or {})
        for child in module.get("child_modules", []):
            walk(child)

    walk(((json.loads(result.stdout or "{}").get("values") or {}).get("root_module")) or {})
    if len(found["raydog_head"]) != 1 or len(found["raydog_observability"]) > 1:
        return {}
    head = found["raydog_head"][0]
    observability = found["raydog_observability"][0] if found["raydog_observability"] else {}
    return {"head_public_ip": head.get("public_ip"), "head_private_ip": head.get("private_ip"),
            "observability_private_ip": observability.get("private_ip")}


def find_output(outputs: dict, name: str):
    """An output by name: a root output, or a key inside an object output (such as a whole module)."""
    if outputs.get(name) is not None:
        return outputs[name]
    for value in outputs.values():
        if isinstance(value, dict) and value.get(name) is not None:
            return value[name]
    return None


def _secret_from_env(variable: str | None, flag: str) -> str | None:
    if not variable:
        return None
    value = os.environ.get(variable)
    if value is None:
        raise ValueError(f"{flag} names {variable}, which is not set")
    return value


def _fail(message: str) -> int:
    print(f"raydog tunnel: {message}", file=sys.stderr)
    return 1
