"""Fault injection: each kind happens at its rate, repeatably, and the SDK's own retries meet it."""

from __future__ import annotations

import pytest
import requests
from raydog_sandbox.faults import FaultInjector, FaultSpecError, parse_faults
from sandbox_helpers import NAMESPACE, make_client
from yellowdog_client.model import WorkRequirement
from yellowdog_client.model.exceptions import InternalServerException

CALLS = 150


def hammer(sandbox, spec: str) -> tuple[int, int, int]:
    """CALLS sequential SDK reads under the spec: (calls that succeeded, calls that failed, requests received)."""
    client = make_client(sandbox)
    sandbox.set_faults(None)
    wr = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="target"))
    sandbox.reset_requests()
    sandbox.set_faults(spec)
    ok = failed = 0
    for _ in range(CALLS):
        try:
            client.work_client.get_work_requirement_by_id(wr.id)
            ok += 1
        except (InternalServerException, requests.HTTPError):
            failed += 1
    sandbox.set_faults(None)
    client.close()
    return ok, failed, sandbox.requests()["routes"]["GET /work/requirements/{id}"]


def test_5xx_happen_at_their_rate_and_the_sdk_retries_them(sandbox):
    ok, failed, received = hammer(sandbox, "5xx=0.3,seed=42")
    faulted = received - ok  # every successful call ended with exactly one good request
    assert ok + failed == CALLS
    assert received > CALLS  # the SDK retried
    assert 0.2 < faulted / received < 0.4
    assert ok >= CALLS * 0.95  # four attempts make a call fail only at 0.3^4


def test_429_carries_retry_after_and_the_sdk_retries_it(sandbox):
    ok, _, received = hammer(sandbox, "429=0.3,retry_after=0,seed=7")
    assert 0.2 < (received - ok) / received < 0.4
    sandbox.set_faults("429=1,retry_after=1")
    response = requests.get(f"{sandbox.url}/workerPools/", timeout=5)
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"


def test_the_same_seed_gives_the_same_faults(sandbox_factory):
    runs = [hammer(sandbox_factory(), "5xx=0.2,429=0.1,retry_after=0,seed=3") for _ in range(2)]
    assert runs[0] == runs[1]


def test_5xx_and_429_are_answered_before_the_request_is_executed(sandbox):
    client = make_client(sandbox)
    sandbox.set_faults("5xx=1")
    with pytest.raises((InternalServerException, requests.HTTPError)):
        client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="never"))
    assert sandbox.requests()["routes"]["POST /work/requirements"] == 4  # the SDK tried four times
    assert sandbox.state()["workRequirements"] == []


def test_a_dropped_response_is_a_connection_error_although_the_change_was_made(sandbox):
    client = make_client(sandbox)
    sandbox.set_faults("drop=1")
    with pytest.raises(requests.ConnectionError):
        client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="created"))
    sandbox.set_faults(None)
    assert [w["name"] for w in sandbox.state()["workRequirements"]] == ["created"]
    assert client.work_client.get_work_requirement_by_name(NAMESPACE, "created").name == "created"


def test_drops_happen_at_their_rate(sandbox):
    client = make_client(sandbox)
    wr = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="target"))
    sandbox.reset_requests()
    sandbox.set_faults("drop=0.25,seed=11")
    for _ in range(CALLS):
        client.work_client.get_work_requirement_by_id(wr.id)  # a dropped GET is retried by the SDK
    received = sandbox.requests()["routes"]["GET /work/requirements/{id}"]
    assert 0.15 < (received - CALLS) / received < 0.35


def test_latency_delays_without_failing_parallel_requests(sandbox):
    import threading

    sandbox.set_faults("latency=20-60ms")
    results: list[int] = []

    def read() -> None:
        results.append(len(make_client(sandbox).worker_pool_client.find_all_worker_pools()))

    threads = [threading.Thread(target=read) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert results == [0] * 20


def test_sandbox_routes_are_never_faulted_and_faults_change_at_runtime(sandbox):
    key = sandbox.auth_headers  # changes on /sandbox/v1 need the key
    response = requests.put(f"{sandbox.url}/sandbox/v1/faults", data="5xx=1", headers=key, timeout=5)
    assert response.json() == {"faults": parse_faults("5xx=1").describe()}
    assert requests.get(f"{sandbox.url}/sandbox/v1/state", timeout=5).status_code == 200
    assert requests.get(f"{sandbox.url}/workerPools/", timeout=5).status_code >= 500
    requests.put(f"{sandbox.url}/sandbox/v1/faults", data="none", headers=key, timeout=5).raise_for_status()
    assert make_client(sandbox).worker_pool_client.find_all_worker_pools() == []
    bad = requests.put(f"{sandbox.url}/sandbox/v1/faults", data="5xx=lots", headers=key, timeout=5)
    assert bad.status_code == 400 and "5xx=lots" in bad.json()["message"]


@pytest.mark.parametrize("spec, message", [
    ("5xx=1.5", "between 0 and 1"),
    ("5xx=0.6,429=0.6", "must not exceed 1"),
    ("latency=300-100ms", "low to high"),
    ("latency=fast", "expected e.g."),
    ("teapot=0.1", "unknown fault 'teapot'"),
    ("5xx", "expected KEY=VALUE"),
    ("seed=x", "whole number"),
    ("methods=PATCH", "methods are"),
    ("drop=0.1,drop=0.2", "given twice"),
])
def test_bad_fault_specs_are_refused_with_a_clear_message(spec, message):
    with pytest.raises(FaultSpecError, match=message):
        parse_faults(spec)


def test_fault_spec_grammar():
    spec = parse_faults("5xx=0.1, 429=0.05,latency=0-300ms,drop=0.05,seed=42,methods=POST+PUT")
    assert (spec.error_rate, spec.throttle_rate, spec.drop_rate, spec.seed) == (0.1, 0.05, 0.05, 42)
    assert (spec.latency_min, spec.latency_max) == (0.0, 0.3)
    assert parse_faults("latency=0.5s").latency_min == 0.5
    assert not parse_faults("").active and not parse_faults("none").active
    only_posts = FaultInjector(parse_faults("5xx=1,methods=POST"))
    assert only_posts.decide("GET").status is None and only_posts.decide("POST").status in (500, 502, 503, 504)


def test_route_filter_faults_only_the_named_routes(sandbox):
    from raydog_sandbox.faults import FaultSpecError, parse_faults

    spec = parse_faults("5xx=1.0,routes=GET /workerPools/{id}+GET /work/tasks/{id}")
    assert spec.applies_to("GET", "GET /workerPools/{id}") and not spec.applies_to("GET", "GET /work/requirements")
    with pytest.raises(FaultSpecError, match="METHOD /path"):
        parse_faults("5xx=1.0,routes=workerPools")
    sandbox.set_faults("5xx=1.0,routes=GET /work/requirements/{id}")
    client = make_client(sandbox)
    created = client.work_client.add_work_requirement(WorkRequirement(namespace=NAMESPACE, name="faulted"))
    with pytest.raises(Exception):
        client.work_client.get_work_requirement_by_id(created.id)
    assert client.work_client.get_work_requirement_by_name(NAMESPACE, "faulted").id == created.id
