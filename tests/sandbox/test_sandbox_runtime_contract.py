"""What the scheduler hands the node runtime: NodeSpec at boot, TaskRun with the agent's environment."""

from __future__ import annotations

import ipaddress

from harness.waits import wait_until
from raydog_sandbox.nodes.runtime import NodeSpec, SimulatedRuntime, TaskRun
from sandbox_helpers import NAMESPACE, bash_task, make_client, provision, task_group, task_status
from yellowdog_client.model import TaskErrorType, TaskStatus, WorkRequirement


class RecordingRuntime(SimulatedRuntime):
    """A simulated runtime that remembers what it was asked to do, and can refuse to start tasks."""

    def __init__(self, fail_tasks: bool = False) -> None:
        super().__init__()
        self.fail_tasks = fail_tasks
        self.nodes: list[NodeSpec] = []
        self.runs: list[TaskRun] = []
        self.stopped: list[str] = []
        self.closed = False

    def start_node(self, node: NodeSpec) -> None:
        self.nodes.append(node)

    def run_task(self, run, on_exit) -> None:
        if self.fail_tasks:
            raise OSError("bash: not found")
        self.runs.append(run)
        super().run_task(run, on_exit)

    def stop_node(self, node_id: str) -> None:
        self.stopped.append(node_id)
        super().stop_node(node_id)

    def close(self) -> None:
        self.closed = True
        super().close()


def start_one_task(sandbox, **environment):
    client = make_client(sandbox)
    pool = provision(client, "pool", 1)
    wr = client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name="cluster", taskGroups=[task_group("pool")]))
    task = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [bash_task("t", **environment)])[0]
    return client, pool, task


def test_nodes_boot_with_their_addresses_and_tasks_run_with_the_agent_environment(sandbox_factory):
    runtime = RecordingRuntime()
    sandbox = sandbox_factory(runtime=runtime)
    client, pool, task = start_one_task(sandbox, RAY_HEAD_IP="127.0.1.1")
    wait_until(lambda: task_status(client, task.id) is TaskStatus.EXECUTING, "the task executes")
    (spec,) = runtime.nodes
    node = client.worker_pool_client.get_node_by_id(spec.node_id)
    assert (spec.private_ip, spec.public_ip, spec.hostname, spec.instance_id) == (
        node.details.privateIpAddress, node.details.publicIpAddress, node.details.hostname, node.details.instanceId)
    assert spec.pool_name == "pool" and spec.userdata == "#!/bin/bash\necho userdata"
    assert ipaddress.ip_address(spec.private_ip) in ipaddress.ip_network("127.0.0.0/8")
    # EXECUTING can be read back just before the runtime has recorded the run (seen under load).
    (run,) = wait_until(lambda: list(runtime.runs), "the runtime asked to run the task", until=lambda runs: runs)
    assert (run.task_id, run.node_id, run.task_type) == (task.id, spec.node_id, "bash")
    assert run.task_data == task.taskData
    env = run.environment
    assert env["RAY_HEAD_IP"] == "127.0.1.1"
    assert env["YD_TASK_ID"] == task.id and env["YD_TASK_GROUP_ID"] == task.taskGroupId
    assert env["YD_INSTANCE_ID"] == spec.instance_id and env["YD_INSTANCE_TYPE"] == "sandbox.medium"
    assert {"YD_PROVIDER", "YD_REGION", "YD_AGENT_DATA", "YD_AGENT_HOME", "YD_WORKER_SLOT"} <= set(env)
    client.worker_pool_client.shutdown_worker_pool_by_id(pool.id)
    wait_until(lambda: runtime.stopped == [spec.node_id], "the node is stopped")
    sandbox.stop()
    assert runtime.closed


def test_a_task_the_runtime_cannot_start_fails_as_unable_to_start(sandbox_factory):
    sandbox = sandbox_factory(runtime=RecordingRuntime(fail_tasks=True))
    client, _, task = start_one_task(sandbox)
    wait_until(lambda: task_status(client, task.id) is TaskStatus.FAILED, "the task fails")
    error = client.work_client.get_task_by_id(task.id).errors[-1]
    assert error.errorType == TaskErrorType.UNABLE_START_PROCESS and "bash: not found" in error.error
