"""Refusals: authentication, unknown ids, names, duplicates, templates, quota, transitions."""

from __future__ import annotations

import pytest
import requests
from harness.waits import wait_until
from sandbox_helpers import NAMESPACE, bash_task, make_client, provision, task_group
from yellowdog_client.model import (
    ComputeRequirementTemplateUsage,
    NodeSearch,
    Task,
    TaskStatus,
    WorkerPoolStatus,
    WorkRequirement,
)
from yellowdog_client.model.exceptions import InvalidRequestException, NotAuthorisedException


def test_wrong_api_key_raises_not_authorised(sandbox):
    client = make_client(sandbox, key_secret="wrong-secret")
    with pytest.raises(NotAuthorisedException):
        client.work_client.get_work_requirement_by_id("ydid:workreq:000000:x")
    response = requests.get(sandbox.url + "/workerPools/", timeout=5)
    assert response.status_code == 401
    assert response.json()["errorType"] == "NotAuthorisedException"
    assert sandbox.requests()["routes"]["GET /workerPools/"] == 1


def test_the_request_timeline_says_when_each_request_came_since_the_reset(sandbox):
    client = make_client(sandbox)
    client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="timed"))
    sandbox.reset_requests()
    assert sandbox.requests()["timeline"] == []
    client.work_client.get_work_requirement_by_name(NAMESPACE, "timed")
    client.worker_pool_client.find_all_worker_pools()
    counted = sandbox.requests()
    routes = [route for _, route in counted["timeline"]]
    assert routes == ["GET /work/namespaces/{namespace}/requirements/{name}", "GET /workerPools/"], counted
    offsets = [offset for offset, _ in counted["timeline"]]
    assert 0 <= offsets[0] <= offsets[1], offsets
    assert counted["total"] == 2 and counted["reset_at"] > 0


def test_every_configured_api_key_is_accepted(sandbox_factory):
    sandbox = sandbox_factory(api_keys=["first:one", "second:two"])
    for key_id, secret in (("first", "one"), ("second", "two")):
        client = make_client(sandbox, key_id, secret)
        assert client.worker_pool_client.find_all_worker_pools() == []


@pytest.mark.parametrize("call", [
    lambda c: c.work_client.get_work_requirement_by_id("ydid:workreq:000000:missing"),
    lambda c: c.work_client.get_work_requirement_by_name(NAMESPACE, "missing"),
    lambda c: c.work_client.get_task_by_id("ydid:task:000000:missing:1:1"),
    lambda c: c.work_client.add_tasks_to_task_group_by_id("ydid:taskgrp:000000:missing:1", [Task(name="t")]),
    lambda c: c.worker_pool_client.get_worker_pool_by_id("ydid:wrkrpool:000000:missing"),
    lambda c: c.worker_pool_client.get_worker_pool_by_name(NAMESPACE, "missing"),
    lambda c: c.worker_pool_client.shutdown_worker_pool_by_id("ydid:wrkrpool:000000:missing"),
    lambda c: c.worker_pool_client.get_node_by_id("ydid:node:000000:missing"),
    lambda c: c.worker_pool_client.get_node_by_worker_id("ydid:wrkr:000000:missing"),
    lambda c: c.compute_client.get_compute_requirement_by_id("ydid:compreq:000000:missing"),
    lambda c: c.compute_client.terminate_compute_requirement_by_id("ydid:compreq:000000:missing"),
], ids=["wr", "wr-by-name", "task", "add-tasks", "pool", "pool-by-name", "shutdown-pool", "node",
        "node-by-worker", "cr", "terminate-cr"])
def test_unknown_ids_are_404_http_errors(sandbox, call):
    client = make_client(sandbox)
    with pytest.raises(requests.HTTPError) as raised:
        call(client)
    assert raised.value.response.status_code == 404
    assert "NotFoundException" in str(raised.value)


def test_duplicate_live_work_requirement_name_is_refused_but_a_finished_ones_is_reused(sandbox):
    client = make_client(sandbox)
    first = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="cluster"))
    with pytest.raises(InvalidRequestException, match="already exists"):
        client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="cluster"))
    client.work_client.add_work_requirement(WorkRequirement(namespace="other", name="cluster"))
    client.work_client.cancel_work_requirement_by_id(first.id, abort=True)
    second = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="cluster"))
    assert second.id != first.id
    assert client.work_client.get_work_requirement_by_name(NAMESPACE, "cluster").id == second.id


def test_duplicate_task_group_name_is_refused_on_submit_and_update(sandbox):
    client = make_client(sandbox)
    with pytest.raises(InvalidRequestException, match="task group 'g' already exists"):
        client.work_client.add_work_requirement(WorkRequirement(
            namespace=NAMESPACE, name="cluster", taskGroups=[task_group("g"), task_group("g")]))
    wr = client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name="cluster", taskGroups=[task_group("g")]))
    wr.taskGroups.append(task_group("g"))
    with pytest.raises(InvalidRequestException, match="already exists"):
        client.work_client.update_work_requirement(wr)
    assert len(client.work_client.get_work_requirement_by_id(wr.id).taskGroups) == 1


def test_duplicate_task_name_in_a_group_is_refused(sandbox):
    client = make_client(sandbox)
    wr = client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name="cluster", taskGroups=[task_group("g"), task_group("h")]))
    group_id = wr.taskGroups[0].id
    client.work_client.add_tasks_to_task_group_by_id(group_id, [bash_task("node-1")])
    with pytest.raises(InvalidRequestException, match="Task names must be unique within task group"):
        client.work_client.add_tasks_to_task_group_by_id(group_id, [bash_task("node-1")])
    with pytest.raises(InvalidRequestException, match="Task names must be unique"):
        client.work_client.add_tasks_to_task_group_by_id(group_id, [bash_task("a"), bash_task("a")])
    # the same name in another group is fine
    client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[1].id, [bash_task("node-1")])


def test_duplicate_live_pool_name_is_refused_but_a_finished_pools_name_is_reused(sandbox):
    client = make_client(sandbox)
    first = provision(client, "cluster-head", 1)
    with pytest.raises(InvalidRequestException, match="already exists"):
        provision(client, "cluster-head", 1)
    client.worker_pool_client.shutdown_worker_pool_by_id(first.id)
    wait_until(lambda: client.worker_pool_client.get_worker_pool_by_id(first.id).status
               is WorkerPoolStatus.TERMINATED, "the first pool is terminated")
    second = provision(client, "cluster-head", 1)
    assert client.worker_pool_client.get_worker_pool_by_name(NAMESPACE, "cluster-head").id == second.id
    assert client.compute_client.get_compute_requirement_by_name(NAMESPACE, "cluster-head").id == \
        second.computeRequirementId


@pytest.mark.parametrize("name, field", [
    ("Upper", "name"), ("9starts-with-digit", "name"), ("ends-with-dash-", "name"), ("a" * 61, "name"),
    ("has space", "name"), ("dots.not.allowed", "name"),
])
def test_invalid_work_requirement_names_are_refused_naming_the_field(sandbox, name, field):
    client = make_client(sandbox)
    with pytest.raises(InvalidRequestException, match=f"{field} '"):
        client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name=name))


def test_invalid_names_of_namespace_group_task_pool_and_tag_are_refused(sandbox):
    client = make_client(sandbox)
    with pytest.raises(InvalidRequestException, match="namespace 'Bad'"):
        client.work_client.add_work_requirement(WorkRequirement(namespace="Bad", name="ok"))
    with pytest.raises(InvalidRequestException, match=r"taskGroups\[0\].name 'Bad-group'"):
        client.work_client.add_work_requirement(WorkRequirement(
            namespace=NAMESPACE, name="ok", taskGroups=[task_group("Bad-group", tag="ok")]))
    with pytest.raises(InvalidRequestException, match="tag 'Bad Tag'"):
        client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="ok", tag="Bad Tag"))
    wr = client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name="ok", taskGroups=[task_group("g")]))
    with pytest.raises(InvalidRequestException, match=r"tasks\[0\].name 'Task_1!'"):
        client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [Task(name="Task_1!")])
    with pytest.raises(InvalidRequestException, match="requirementName 'Pool'"):
        provision(client, "Pool", 1, tag="ok")
    with pytest.raises(InvalidRequestException, match="workerTag 'Bad-Tag'"):
        provision(client, "pool", 1, tag="Bad-Tag")


def test_unknown_template_is_refused_naming_it(sandbox):
    client = make_client(sandbox)
    with pytest.raises(InvalidRequestException, match="'sandbox/no-such-template' not found"):
        provision(client, "pool", 1, template="sandbox/no-such-template")
    templates = requests.get(sandbox.url + "/sandbox/v1/templates", timeout=5).json()["templates"]
    by_name = {t["name"]: t for t in templates}
    assert {"sandbox/ray-head", "sandbox/ray-worker", "sandbox/ray-observability", "sandbox/small"} <= set(by_name)
    pool = provision(client, "by-id", 1, template=by_name["sandbox/small"]["id"])
    assert pool.id.startswith("ydid:wrkrpool:")


def test_templates_added_on_the_command_line_are_accepted(sandbox_factory):
    sandbox = sandbox_factory(templates=["team/gpu=g5.xlarge:4:16"])
    client = make_client(sandbox)
    pool = provision(client, "gpu-pool", 1, template="team/gpu")
    node = wait_until(lambda: client.worker_pool_client.find_nodes(NodeSearch(workerPoolId=pool.id)),
                      "the node registers")[0]
    assert node.details.instanceType == "g5.xlarge" and node.details.vcpus == 4


def test_provisioning_beyond_max_nodes_is_refused_as_quota_exceeded(sandbox_factory):
    sandbox = sandbox_factory(max_nodes=3)
    client = make_client(sandbox)
    first = provision(client, "first", 2)
    with pytest.raises(InvalidRequestException, match="quota exceeded"):
        provision(client, "second", 2)
    with pytest.raises(InvalidRequestException, match="quota exceeded"):
        client.worker_pool_client.resize_worker_pool_by_id(first.id, 4)
    assert sandbox.state()["live"]["workerPools"] == 1
    provision(client, "second", 1)
    client.worker_pool_client.shutdown_worker_pool_by_id(first.id)
    wait_until(lambda: sandbox.state()["live"]["instances"] == 1, "the first pool's instances are gone")
    provision(client, "third", 2)


def test_invalid_work_requirement_transition_is_403_invalid_status(sandbox):
    client = make_client(sandbox)
    wr = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="cluster"))
    assert client.work_client.cancel_work_requirement_by_id(wr.id, True).status.name == "CANCELLED"
    with pytest.raises(requests.HTTPError) as raised:
        client.work_client.cancel_work_requirement_by_id(wr.id, True)
    assert raised.value.response.status_code == 403
    assert "InvalidWorkRequirementStatusException" in str(raised.value)
    with pytest.raises(requests.HTTPError, match="InvalidWorkRequirementStatusException"):
        client.work_client.start_work_requirement_by_id(wr.id)


def test_tasks_cannot_be_added_to_a_finished_work_requirement(sandbox):
    client = make_client(sandbox)
    wr = client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name="cluster", taskGroups=[task_group("g")]))
    client.work_client.cancel_work_requirement_by_id(wr.id, False)
    with pytest.raises(requests.HTTPError, match="InvalidWorkRequirementStatusException"):
        client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [bash_task("t")])


def test_task_of_an_unknown_type_is_refused(sandbox):
    client = make_client(sandbox)
    wr = client.work_client.add_work_requirement(WorkRequirement(
        namespace=NAMESPACE, name="cluster", taskGroups=[task_group("g")]))
    with pytest.raises(InvalidRequestException, match="'docker' is not one of the task group's task types"):
        client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [Task(name="t", taskType="docker")])
    added = client.work_client.add_tasks_to_task_group_by_id(wr.taskGroups[0].id, [Task(name="t")])
    assert added[0].taskType == "bash" and added[0].status is TaskStatus.READY


def test_bad_request_bodies_are_invalid_request(sandbox):
    headers = {"Authorization": f"yd-key {sandbox.key_id}:{sandbox.key_secret}", "Content-Type": "application/json"}
    response = requests.post(sandbox.url + "/work/requirements", data="{not json", headers=headers, timeout=5)
    assert response.status_code == 400 and response.json()["errorType"] == "InvalidRequestException"
    response = requests.post(sandbox.url + "/workerPools/provisioned/template", json={"x": 1}, headers=headers,
                             timeout=5)
    assert "requirementTemplateUsage is required" in response.json()["message"]
    usage = ComputeRequirementTemplateUsage(templateId="sandbox/small", requirementName="p")
    client = make_client(sandbox)
    with pytest.raises(InvalidRequestException, match="requirementNamespace is required"):
        client.worker_pool_client.provision_worker_pool(usage)


def test_a_name_ending_in_a_newline_is_refused(sandbox):
    """Names are matched in full: "adv\n" is not the valid name "adv" (issue 13)."""
    import http.client
    import json
    from urllib.parse import urlparse

    url = urlparse(sandbox.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    body = json.dumps({"namespace": "adv\n", "name": "c", "taskGroups": []})
    connection.request("POST", url.path + "/work/requirements", body=body, headers={
        "Content-Type": "application/json", "Authorization": f"yd-key {sandbox.key_id}:{sandbox.key_secret}"})
    answer = connection.getresponse()
    assert answer.status == 400, answer.read()
    assert "namespace" in json.loads(answer.read())["message"]
