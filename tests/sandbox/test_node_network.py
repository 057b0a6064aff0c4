"""Exec-mode nodes have a network of their own, run tasks unprivileged, and write only their own directory."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import textwrap
import uuid

import pytest
from nodes_helpers import (
    TEST_MARKER,
    ExitRecorder,
    bash_task,
    marked_processes,
    planned_node,
    read,
    requires_exec,
    wait_until,
)
from raydog_sandbox.nodes.exec_runtime import ExecRuntime
from raydog_sandbox.nodes.network import probe_network

NETWORK_PROBLEM = probe_network()
pytestmark = [
    pytest.mark.exec,
    requires_exec,
    pytest.mark.skipif(NETWORK_PROBLEM is not None, reason=NETWORK_PROBLEM or ""),
]

PYTHON = "/opt/yellowdog/agent/venv/bin/python"

# Serves its hostname on every address at port 6379 (Ray's GCS port) until killed.
SERVER = textwrap.dedent(
    f"""\
    exec {PYTHON} -c '
    import socket
    server = socket.create_server(("0.0.0.0", 6379))
    print("listening", flush=True)
    while True:
        connection, _ = server.accept()
        connection.sendall(socket.gethostname().encode())
        connection.close()
    '
    """
)


@pytest.fixture
def runtime(tmp_path):
    marker = uuid.uuid4().hex
    runtime = ExecRuntime(tmp_path / "sandbox", environment={TEST_MARKER: marker}, network=True)
    yield runtime
    runtime.close()
    assert marked_processes(marker) == []


def greeting(ip: str) -> str:
    with socket.create_connection((ip, 6379), timeout=5) as connection:
        return connection.recv(100).decode()


def run_to_end(runtime: ExecRuntime, task_id: str, spec, script: str) -> str:
    ended = ExitRecorder()
    runtime.run_task(bash_task(task_id, spec, script), ended)
    code, _ = ended.wait(60)
    output = runtime.task_output(task_id)
    assert code == 0, output
    return output


def test_nodes_bind_the_same_port_and_the_host_reaches_both_addresses_of_each(runtime):
    a, b = planned_node(runtime, "node-a", 0), planned_node(runtime, "node-b", 1)
    assert a.private_ip.startswith("198.18.") and a.public_ip.startswith("198.19.")
    for spec in (a, b):
        runtime.start_node(spec)
        runtime.run_task(bash_task(f"serve-{spec.hostname}", spec, SERVER), ExitRecorder())
    assert wait_until(lambda: all("listening" in (runtime.task_output(f"serve-{n}") or "") for n in ("node-a", "node-b")),
                      "both nodes listen", timeout=20)

    assert [greeting(ip) for ip in (a.private_ip, a.public_ip, b.private_ip, b.public_ip)] == [
        "node-a", "node-a", "node-b", "node-b"]
    probe = f"""{PYTHON} -c '
import socket
route = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
route.connect(("8.8.8.8", 53))
print("source", route.getsockname()[0])
print("peer", socket.create_connection(("{b.private_ip}", 6379), timeout=5).recv(100).decode())
'
ip -4 -o addr show eth0 | awk '{{print "address", $4}}'
"""
    output = run_to_end(runtime, "probe", a, probe)
    assert f"source {a.private_ip}" in output, "Ray's way of finding the node's IP finds the private one"
    assert "peer node-b" in output, "nodes reach each other's private IP"
    assert f"address {a.private_ip}/24" in output and f"address {a.public_ip}/24" in output


def test_nothing_is_routed_beyond_the_bridge(runtime):
    a = planned_node(runtime, "node-a", 0)
    runtime.start_node(a)
    output = run_to_end(runtime, "routes", a, "ip -4 route")
    assert "via" not in output, f"no gateway in the node: {output}"
    host_routes = subprocess.run(["ip", "-4", "route", "show", "dev", runtime.network.bridge],
                                 capture_output=True, text=True, check=True).stdout
    assert sorted(line.split()[0] for line in host_routes.splitlines()) == sorted(
        [f"{runtime.network.plan.private_prefix}.0/24", f"{runtime.network.plan.public_prefix}.0/24"])


def test_tasks_run_unprivileged_and_write_only_their_node(runtime, tmp_path):
    a = planned_node(runtime, "node-a", 0)
    runtime.start_node(a)
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o777)
    script = textwrap.dedent(
        f"""\
        echo "user: $(id -un) $(id -u)"
        for path in "$PWD/work" "$HOME/home" /tmp/tmp /dev/shm/shm /etc/etc /var/tmp/vartmp \\
                    /opt/yellowdog/agent/venv/venv {outside}/outside; do
            if touch "$path" 2>/dev/null; then echo "writable: $path"; else echo "refused: $path"; fi
        done
        """
    )
    output = run_to_end(runtime, "who", a, script)
    assert "user: yd-agent 59999" in output
    writable = {line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("writable: ")}
    assert {p.rsplit("/", 1)[1] for p in writable} == {"work", "home", "tmp", "shm"}, output
    assert not (outside / "outside").exists()


def test_userdata_runs_as_the_node_root_yet_cannot_write_the_host(tmp_path):
    marker = uuid.uuid4().hex
    outside = tmp_path / "outside"
    outside.mkdir()
    userdata = f"id -u > /opt/yellowdog/agent/uid\ntouch {outside}/written 2>/dev/null || echo refused > /opt/yellowdog/agent/host\n"
    runtime = ExecRuntime(tmp_path / "sandbox", environment={TEST_MARKER: marker}, network=True, run_userdata=True)
    try:
        spec = planned_node(runtime, "node-a", 0)
        runtime.start_node(dataclasses.replace(spec, userdata=userdata))
        home = next((runtime.data_dir / "nodes").glob("*/home"))
        assert read(home / "uid") == "0\n" and read(home / "host") == "refused\n"
        assert not (outside / "written").exists()
    finally:
        runtime.close()
