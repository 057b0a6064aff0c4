"""``GET /work/requirements/{id}/updates``: the requirement's complete JSON at each change, as
server-sent events, with YellowDog's authentication, and closed once the requirement is finished."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from harness.waits import wait_until
from sandbox_helpers import NAMESPACE, bash_task, make_client, provision, task_group
from yellowdog_client.model import WorkRequirement


def listen(sandbox, wr_id: str, events: list, headers: dict | None = None) -> tuple[threading.Thread, dict]:
    """Read the stream on a thread into ``events`` (decoded JSON); ``answer`` gets the status."""
    answer: dict = {}

    def read() -> None:
        try:
            stream()
        except requests.RequestException as error:  # the sandbox stopped under an open stream
            answer["broken"] = error

    def stream() -> None:
        with requests.get(f"{sandbox.url}/work/requirements/{wr_id}/updates", stream=True, timeout=30,
                          headers=headers if headers is not None else {
                              "Authorization": f"yd-key {sandbox.key_id}:{sandbox.key_secret}",
                              "Accept": "text/event-stream"}) as response:
            answer["status"] = response.status_code
            answer["type"] = response.headers.get("content-type", "")
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        answer["closed"] = True

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    wait_until(lambda: answer.get("status"), "the stream's answer", timeout=10)
    return thread, answer


def test_each_change_is_one_event_with_the_whole_requirement_and_the_end_closes_the_stream(sandbox):
    client = make_client(sandbox)
    wr = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="streamed"))
    provision(client, "streamed-pool", 1)
    events: list[dict] = []
    thread, answer = listen(sandbox, wr.id, events)
    assert answer["status"] == 200 and answer["type"].startswith("text/event-stream")

    wr.taskGroups = [task_group("streamed-pool")]
    wr = client.work_client.update_work_requirement(wr)
    group = wr.taskGroups[0]
    client.work_client.add_tasks_to_task_group_by_id(group.id, [bash_task("node-0")])

    def executing() -> int:
        counts = (events[-1]["taskGroups"][0].get("taskSummary") or {}).get("statusCounts") or {} if events else {}
        return counts.get("EXECUTING", 0)

    wait_until(executing, "an event with the task executing", timeout=30)
    assert events[0]["id"] == wr.id and [g["name"] for g in events[0]["taskGroups"]] == ["streamed-pool"]
    assert answer.get("closed") is None, "the stream ended while the requirement was live"

    client.work_client.cancel_work_requirement_by_id(wr.id, abort=True)
    thread.join(30)
    assert answer.get("closed"), "the stream stayed open after the requirement finished"
    assert events[-1]["status"] == "CANCELLED", events[-1]["status"]
    client.close()


def test_no_event_comes_while_nothing_changes(sandbox):
    client = make_client(sandbox)
    wr = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="quiet"))
    events: list[dict] = []
    _, answer = listen(sandbox, wr.id, events)
    client.work_client.get_work_requirement_by_id(wr.id)  # a read changes nothing

    changed = client.work_client.get_work_requirement_by_id(wr.id)
    changed.tag = "changed"
    client.work_client.update_work_requirement(changed)
    wait_until(lambda: events, "the event of the update", timeout=10)
    assert events[0]["tag"] == "changed"
    assert answer["status"] == 200 and len(events) == 1, events
    assert sandbox.requests()["routes"]["GET /work/requirements/{id}/updates"] == 1
    client.close()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "yd-key bench:wrong"}], ids=["no key", "wrong key"])
def test_a_stream_needs_the_key(sandbox, headers):
    client = make_client(sandbox)
    wr = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="guarded"))
    response = requests.get(f"{sandbox.url}/work/requirements/{wr.id}/updates", headers=headers, timeout=10)
    assert response.status_code == 401 and response.json()["errorType"] == "NotAuthorisedException"
    client.close()


def test_the_stream_of_an_unknown_requirement_is_404(sandbox):
    response = requests.get(f"{sandbox.url}/work/requirements/ydid:workreq:000000:none/updates", timeout=10,
                            headers={"Authorization": f"yd-key {sandbox.key_id}:{sandbox.key_secret}"})
    assert response.status_code == 404 and response.json()["errorType"] == "NotFoundException"
