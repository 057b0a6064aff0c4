"""Exec-mode nodes: real namespaces, real bash tasks, real Ray. No mocks."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from harness.waits import wait_until
import pytest
from nodes_helpers import (
    TEST_MARKER,
    ExitRecorder,
    bash_task,
    marked_processes,
    node,
    planned_node,
    processes_mentioning,
    read,
    requires_exec,
    wait_for_processes,
)
from raydog_sandbox.nodes import exec_runtime as nodes
from raydog_sandbox.nodes.exec_runtime import ExecCapabilityError, ExecRuntime, NodeBootError

pytestmark = [pytest.mark.exec, requires_exec]

TESTS = Path(__file__).resolve().parents[1]  # on sys.path in the subprocesses below, for harness


@pytest.fixture
def marker() -> str:
    return uuid.uuid4().hex


def task_directory(runtime: ExecRuntime, task_id: str) -> Path:
    """Where the task ran on the host: <node>/data/workers/<task id> under the runtime's directory."""
    [found] = runtime.data_dir.glob(f"nodes/*/data/workers/{nodes.safe_name(task_id)}")
    return found


@pytest.fixture
def runtime(tmp_path: Path, marker: str):
    """Nodes on the host's network (the fallback): these tests are about processes and files."""
    runtime = ExecRuntime(tmp_path / "sandbox", environment={TEST_MARKER: marker}, network=False)
    yield runtime
    runtime.close()
    assert marked_processes(marker) == []
    assert processes_mentioning(str(tmp_path / "sandbox")) == []


# -- tasks ---------------------------------------------------------------------------------


def test_task_runs_bash_taskdata_with_its_arguments_environment_and_working_dir(runtime, monkeypatch):
    monkeypatch.setenv("RAYDOG_HOST_ONLY", "leaked")
    spec = node("node-a", "127.0.3.7")
    runtime.start_node(spec)
    script = textwrap.dedent(
        """\
        echo "args: $*"
        echo "cwd: $PWD"
        ls
        echo "to stderr" >&2
        env | sort
        """
    )
    ended = ExitRecorder()
    run = bash_task(
        "ydid:task:000000:abc:1:1", spec, script, {"YD_TASK_ID": "ydid:task:000000:abc:1:1"}, ["one", "two"]
    )
    runtime.run_task(run, ended)

    code, tail = ended.wait()
    output = runtime.task_output(run.task_id)
    assert code == 0
    assert "args: one two" in output
    assert "cwd: /var/opt/yellowdog/agent/data/workers/ydid_task_000000_abc_1_1" in output
    assert "taskdata.txt" in output and "taskoutput.txt" in output
    assert "to stderr" in output
    env = dict(
        line.split("=", 1)
        for line in output.splitlines()
        if "=" in line and not line.startswith(("args", "cwd"))
    )
    assert env["YD_TASK_ID"] == run.task_id
    assert env["RAY_NODE_IP_ADDRESS"] == "127.0.3.7"
    assert env["RAY_USAGE_STATS_ENABLED"] == "0"
    assert env["HOME"] == "/opt/yellowdog/agent"
    assert "PATH" in env and "LANG" in env
    assert "RAYDOG_HOST_ONLY" not in env
    assert tail == output[-len(tail) :]
    workdir = task_directory(runtime, run.task_id)
    assert read(workdir / "taskdata.txt") == script
    assert read(workdir / "taskoutput.txt") == output


def test_exit_codes_are_reported_as_bash_reports_them(runtime):
    spec = node("node-a", "127.0.3.7")
    runtime.start_node(spec)
    cases = {"ok": ("true", 0), "fails": ("exit 3", 3), "killed": ("kill -KILL $$", 137)}
    recorders = {}
    for name, (script, _) in cases.items():
        recorders[name] = ExitRecorder()
        runtime.run_task(bash_task(f"task-{name}", spec, script), recorders[name])
    for name, (_, expected) in cases.items():
        assert recorders[name].wait()[0] == expected
        assert len(recorders[name].calls) == 1


def test_on_exit_tail_is_the_last_4_kib_of_the_output(runtime):
    spec = node("node-a", "127.0.3.7")
    runtime.start_node(spec)
    ended = ExitRecorder()
    runtime.run_task(bash_task("task-long", spec, "for i in $(seq 5000); do echo line-$i; done"), ended)
    _, tail = ended.wait()
    assert tail.endswith("line-5000\n")
    assert 3000 < len(tail.encode()) <= 4096
    assert runtime.task_output("task-long").startswith("line-1\n")


def test_a_task_that_cannot_start_raises(runtime):
    spec = node("node-a", "127.0.3.7")
    runtime.start_node(spec)
    with pytest.raises(RuntimeError, match="node ydid:node:000000:ghost is not running"):
        runtime.run_task(bash_task("task-missing-node", node("ghost", "127.0.3.8"), "true"), ExitRecorder())
    docker = dataclasses.replace(bash_task("task-docker", spec, "true"), task_type="docker")
    with pytest.raises(ValueError, match="task type 'docker' is not supported"):
        runtime.run_task(docker, ExitRecorder())
    runtime.run_task(bash_task("task-busy", spec, "sleep 1000"), ExitRecorder())
    with pytest.raises(ValueError, match="task task-busy is already running"):
        runtime.run_task(bash_task("task-busy", spec, "true"), ExitRecorder())
    assert runtime.task_output("never-run") is None


def test_a_retried_task_runs_again_in_a_fresh_working_directory(runtime):
    spec = node("node-a", "127.0.3.7")
    runtime.start_node(spec)
    first, second = ExitRecorder(), ExitRecorder()
    runtime.run_task(bash_task("task-retried", spec, "ls; touch left-behind; exit 1"), first)
    assert first.wait()[0] == 1
    runtime.run_task(bash_task("task-retried", spec, "ls"), second)
    assert second.wait() == (0, "taskdata.txt\ntaskoutput.txt\n")


# -- isolation -----------------------------------------------------------------------------


def test_nodes_have_their_own_processes_tmp_hostname_and_see_the_ray_venv(runtime):
    a, b = node("node-a", "127.0.3.7"), node("node-b", "127.0.3.8")
    runtime.start_node(a)
    runtime.start_node(b)
    sleeper = ExitRecorder()
    runtime.run_task(bash_task("task-a", a, "echo secret > /tmp/node-a-file; exec sleep 1000"), sleeper)
    wait_until(lambda: os.listdir(runtime.data_dir / "nodes" / nodes.safe_name(a.node_id) / "tmp"),
               "the task writes node-a-file in the node's /tmp", until=lambda names: "node-a-file" in names)

    probe = ExitRecorder()
    script = textwrap.dedent(
        """\
        echo "pid1: $(cat /proc/1/cmdline | tr '\\0' ' ')"
        echo "processes: $(ps -eo args= | grep -c '^sleep 1000$')"
        echo "tmp: $(ls /tmp)"
        echo "hostname: $(hostname)"
        echo "resolves: $(getent hosts node-b)"
        echo "prefix: $(/opt/yellowdog/agent/venv/bin/python -c 'import sys; print(sys.prefix)')"
        test -x /opt/yellowdog/agent/venv/bin/ray && echo "ray: yes"
        """
    )
    runtime.run_task(bash_task("task-b", b, script), probe)
    code, _ = probe.wait()
    output = runtime.task_output("task-b")

    assert code == 0, output
    assert "node_agent.py" in output.splitlines()[0]
    assert "processes: 0" in output
    # The node's /tmp is its own: nothing of node A's or the host's, except the path down to
    # the Ray venv when that venv itself lives under /tmp (it is grafted in).
    tmp_entries = set(output.split("tmp: ", 1)[1].splitlines()[0].split())
    venv = Path(sys.prefix).resolve()
    grafted = {venv.relative_to("/tmp").parts[0]} if venv.is_relative_to("/tmp") else set()
    assert tmp_entries <= grafted, tmp_entries
    assert "hostname: node-b" in output
    assert "resolves: 127.0.3.8" in output
    assert "prefix: /opt/yellowdog/agent/venv" in output
    assert "ray: yes" in output
    assert not sleeper.called
    assert not Path("/opt/yellowdog").exists()
    assert not Path("/var/opt/yellowdog").exists()


def test_private_ip_outside_loopback_is_refused(runtime):
    with pytest.raises(ValueError, match="not in 127.0.0.0/8"):
        runtime.start_node(node("node-a", "10.0.0.7"))


def test_missing_namespace_support_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no unshare on PATH
    nodes._exec_capability_problem.cache_clear()
    try:
        with pytest.raises(ExecCapabilityError) as raised:
            ExecRuntime(tmp_path)
    finally:
        nodes._exec_capability_problem.cache_clear()
    message = str(raised.value)
    assert "\n" not in message
    assert "--mode simulate" in message


# -- abort ---------------------------------------------------------------------------------


def test_abort_runs_the_exit_trap_then_reports_143(runtime, marker):
    spec = node("node-a", "127.0.3.7")
    runtime.start_node(spec)
    ended = ExitRecorder()
    script = "trap 'echo trapped > trap-ran' EXIT\nsleep 1000 &\nsleep 1000\n"
    runtime.run_task(bash_task("task-trap", spec, script), ended)
    wait_for_processes(marker, 3)

    runtime.abort_task("task-trap", grace_seconds=30)

    code, _ = ended.wait()
    assert code == 143
    assert read(task_directory(runtime, "task-trap") / "trap-ran") == "trapped\n"
    wait_for_processes(marker, 0)
    assert len(ended.calls) == 1


def test_abort_kills_a_task_that_ignores_sigterm_after_the_grace(runtime, marker):
    spec = node("node-a", "127.0.3.7")
    runtime.start_node(spec)
    ended = ExitRecorder()
    runtime.run_task(bash_task("task-stubborn", spec, "trap '' TERM\nsleep 1000\n"), ended)
    wait_for_processes(marker, 2)

    runtime.abort_task("task-stubborn", grace_seconds=1)

    assert ended.wait()[0] == 137
    wait_for_processes(marker, 0)


def test_abort_also_kills_daemons_the_task_detached(runtime, marker):
    spec = node("node-a", "127.0.3.7")
    runtime.start_node(spec)
    ended = ExitRecorder()
    script = "setsid sleep 1001 < /dev/null > /dev/null 2>&1 &\nsleep 1000\n"
    runtime.run_task(bash_task("task-daemon", spec, script), ended)
    wait_until(lambda: [p.cmdline() for p in marked_processes(marker)], "the detached daemon runs",
               until=lambda commands: any("1001" in command for command in commands))

    runtime.abort_task("task-daemon", grace_seconds=30)

    assert ended.wait()[0] == 143
    wait_for_processes(marker, 0)


def test_abort_of_an_ended_or_unknown_task_does_nothing(runtime):
    spec = node("node-a", "127.0.3.7")
    runtime.start_node(spec)
    ended = ExitRecorder()
    runtime.run_task(bash_task("task-quick", spec, "true"), ended)
    ended.wait()
    runtime.abort_task("task-quick", grace_seconds=0)
    runtime.abort_task("no-such-task")
    assert ended.calls == [(0, "")]


# -- stopping ------------------------------------------------------------------------------


def test_stop_node_ends_every_process_of_the_node_and_its_running_tasks(runtime, marker):
    a, b = node("node-a", "127.0.3.7"), node("node-b", "127.0.3.8")
    runtime.start_node(a)
    runtime.start_node(b)
    on_a, on_b = ExitRecorder(), ExitRecorder()
    runtime.run_task(bash_task("task-a", a, "setsid sleep 1001 &\nsleep 1000 &\nwait\n"), on_a)
    runtime.run_task(bash_task("task-b", b, "sleep 1000\n"), on_b)
    wait_for_processes(marker, 5)

    runtime.stop_node(a.node_id)

    assert on_a.calls == [(137, "")]
    survivors = {tuple(p.cmdline()) for p in marked_processes(marker)}
    assert survivors == {("bash", "taskdata.txt"), ("sleep", "1000")}
    assert not on_b.called
    with pytest.raises(RuntimeError, match="is not running"):
        runtime.run_task(bash_task("task-after-stop", a, "true"), ExitRecorder())


def test_close_leaves_no_process_of_the_runtime(tmp_path, marker):
    runtime = ExecRuntime(tmp_path / "sandbox", environment={TEST_MARKER: marker})
    recorders = []
    for i in range(3):
        spec = planned_node(runtime, f"node-{i}", i)
        runtime.start_node(spec)
        recorders.append(ExitRecorder())
        runtime.run_task(
            bash_task(f"task-{i}", spec, "trap '' TERM\nsetsid sleep 1001 &\nsleep 1000\n"), recorders[-1]
        )
    wait_for_processes(marker, 9)
    assert len(processes_mentioning(str(tmp_path / "sandbox"))) == 6  # unshare + agent per node

    runtime.close()

    assert marked_processes(marker) == []
    assert processes_mentioning(str(tmp_path / "sandbox")) == []
    assert [r.calls for r in recorders] == [[(137, "")]] * 3
    if runtime.network is not None:
        assert subprocess.run(["ip", "link", "show", runtime.network.bridge], capture_output=True, check=False).returncode != 0


def test_a_crashed_sandbox_leaves_no_process(tmp_path, marker):
    sandbox = textwrap.dedent(
        f"""\
        import sys, time
        sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(TESTS)!r}]
        from nodes_helpers import bash_task, node
        from raydog_sandbox.nodes.exec_runtime import ExecRuntime
        runtime = ExecRuntime({str(tmp_path / "sandbox")!r}, environment={{{TEST_MARKER!r}: {marker!r}}},
                              network=False)
        spec = node("node-a", "127.0.3.7")
        runtime.start_node(spec)
        runtime.run_task(bash_task("task-a", spec, "trap '' TERM\\nsetsid sleep 1001 &\\nsleep 1000\\n"), print)
        print("running", flush=True)
        time.sleep(1000)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", sandbox], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "running\n"
        wait_for_processes(marker, 3)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        process.kill()
    wait_for_processes(marker, 0, timeout=30)
    wait_until(lambda: processes_mentioning(str(tmp_path / "sandbox")), "no agent of the runtime runs", timeout=30,
               until=lambda found: not found)


# -- userdata ------------------------------------------------------------------------------


def test_userdata_runs_at_boot_only_when_enabled(tmp_path, marker):
    userdata = "echo booted-on-$(hostname) > /opt/yellowdog/agent/userdata-ran\n"
    spec = node("node-a", "127.0.3.7", userdata=userdata)
    home = tmp_path / "sandbox" / "nodes" / nodes.safe_name(spec.node_id) / "home"

    off = ExecRuntime(tmp_path / "sandbox", environment={TEST_MARKER: marker}, network=False)
    off.start_node(spec)
    off.close()
    assert not (home / "userdata-ran").exists()

    on = ExecRuntime(tmp_path / "sandbox", environment={TEST_MARKER: marker}, run_userdata=True, network=False)
    on.start_node(spec)
    on.close()
    assert read(home / "userdata-ran") == "booted-on-node-a\n"


def test_failing_userdata_fails_the_boot_clearly(tmp_path, marker):
    runtime = ExecRuntime(tmp_path / "sandbox", environment={TEST_MARKER: marker}, run_userdata=True, network=False)
    spec = node("node-a", "127.0.3.7", userdata="echo 'pip: no network' >&2\nexit 4\n")
    with pytest.raises(NodeBootError, match=r"userdata failed with exit code 4: 'pip: no network'"):
        runtime.start_node(spec)
    assert processes_mentioning(str(tmp_path / "sandbox")) == []
    runtime.close()


# -- Ray -----------------------------------------------------------------------------------

# Plain node scripts as on YellowDog, with Ray's fixed ports: every node has its own
# network namespace, so Ray finds the node's private IP and no port clashes.
RAY = "/opt/yellowdog/agent/venv/bin/ray"
HEAD_SCRIPT = f"""#!/bin/bash
set -euo pipefail
trap '{RAY} stop' EXIT
{RAY} start --head --port=6379 --num-cpus=0 --memory=0 --dashboard-host=0.0.0.0 --block
"""
WORKER_SCRIPT = f"""#!/bin/bash
set -euo pipefail
trap '{RAY} stop' EXIT
{RAY} start --address=$RAY_HEAD_IP:6379 --num-cpus=1 --block
"""

# Runs on the host, outside every node, as a Ray client.
DRIVER = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
from harness.waits import wait_until
import ray
ray.init(sys.argv[1], logging_level="ERROR")
expected = int(sys.argv[2])
alive = wait_until(lambda: sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]),
                   f"{expected} Ray nodes are alive", timeout=60, interval=0.5,
                   until=lambda alive: len(alive) == expected)

@ray.remote(num_cpus=1, scheduling_strategy="SPREAD")
def where():
    time.sleep(0.2)  # each call holds its CPU a moment, so that the calls spread over the workers
    return ray.util.get_node_ip_address()

print(json.dumps({"alive": alive, "ran_on": sorted(set(ray.get([where.remote() for _ in range(8)])))}))
ray.shutdown()
"""


def run_driver(client_address: str, expected_nodes: int) -> dict:
    """Run DRIVER; retried because Ray's client server can die at fork (ray-project/ray#63202)."""
    last = None
    for _ in range(3):
        last = subprocess.run(
            [sys.executable, "-c", DRIVER, client_address, str(expected_nodes), str(TESTS)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if last.returncode == 0:
            return json.loads(last.stdout.strip().splitlines()[-1])
    raise AssertionError(f"Ray client driver failed:\n{last.stderr[-3000:]}")


def test_ray_cluster_of_three_nodes_survives_losing_one_worker(tmp_path, marker):
    runtime = ExecRuntime(tmp_path / "sandbox", environment={TEST_MARKER: marker}, network=True)
    head, w1, w2 = (planned_node(runtime, name, i) for i, name in enumerate(("head", "worker-1", "worker-2")))
    ips = [head.private_ip, w1.private_ip, w2.private_ip]
    ports = {"CLIENT_PORT": "10001"}
    ended = {name: ExitRecorder() for name in ("head", "worker-1", "worker-2")}
    try:
        for spec in (head, w1, w2):
            runtime.start_node(spec)
        runtime.run_task(bash_task("task-head", head, HEAD_SCRIPT, ports), ended["head"])
        for spec in (w1, w2):
            env = {**ports, "RAY_HEAD_IP": head.private_ip}
            runtime.run_task(
                bash_task(f"task-{spec.hostname}", spec, WORKER_SCRIPT, env), ended[spec.hostname]
            )

        cluster = run_driver(f"ray://{head.private_ip}:{ports['CLIENT_PORT']}", 3)
        assert cluster == {"alive": sorted(ips), "ran_on": sorted(ips[1:])}, "each node registers its own IP"
        for spec in (head, w1, w2):
            logs = runtime.data_dir / "nodes" / nodes.safe_name(spec.node_id) / "tmp" / "ray"
            agent_log = "".join(read(p) for p in logs.glob("session_*/logs/dashboard_agent.log"))
            assert "Dashboard agent http address" in agent_log and "Failed to bind" not in agent_log

        runtime.abort_task("task-worker-1", grace_seconds=30)
        code, _ = ended["worker-1"].wait(60)
        assert code == 143
        assert "Stopped all" in runtime.task_output("task-worker-1")  # its EXIT trap ran ray stop

        cluster = run_driver(f"ray://{head.private_ip}:{ports['CLIENT_PORT']}", 2)
        assert cluster == {"alive": sorted([ips[0], ips[2]]), "ran_on": [ips[2]]}
        assert not ended["head"].called and not ended["worker-2"].called
    finally:
        runtime.close()

    assert marked_processes(marker) == []
    assert processes_mentioning(str(tmp_path / "sandbox")) == []
    assert ended["head"].calls[0][0] == 137 and ended["worker-2"].calls[0][0] == 137


def test_without_network_namespaces_nodes_share_the_host_network_and_say_so(monkeypatch, tmp_path, caplog):
    from raydog_sandbox.nodes.network import LOOPBACK_PLAN

    monkeypatch.setattr(nodes, "probe_network", lambda: "no iproute2 here")
    with caplog.at_level("WARNING", logger="raydog_sandbox.nodes.exec_runtime"):
        runtime = ExecRuntime(tmp_path / "sandbox")
    try:
        assert runtime.network is None and runtime.address_plan is LOOPBACK_PLAN
        assert "nodes share the host's network (no iproute2 here)" in caplog.text
    finally:
        runtime.close()
    with pytest.raises(ExecCapabilityError, match="no iproute2 here"):
        ExecRuntime(tmp_path / "sandbox", network=True)
