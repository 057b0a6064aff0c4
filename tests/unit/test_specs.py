"""Validation rules and the names they derive, without Terraform or the platform."""

from datetime import timedelta

import pytest
from tf.types import Unknown

from raydog import names, specs


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("10m", 600), ("2h", 7200), ("1h30m", 5400), ("500ms", 0.5), ("1.5h", 5400)],
)
def test_durations_parse_like_terraform_timeouts(text, seconds):
    assert specs.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "10x", "-5m", "0s", "m10", "10m ", "1h-30m"])
def test_bad_durations_are_refused_with_an_example(text):
    with pytest.raises(ValueError, match="duration|longer than zero"):
        specs.parse_duration(text)


def test_format_duration_is_the_inverse_of_parse():
    for text in ("2h", "1h30m", "1m30s", "45s"):
        assert specs.format_duration(specs.parse_duration(text)) == text


@pytest.mark.parametrize(
    "value, ok",
    [("a", True), ("ray-1", True), ("r_a-y9", True), ("a" * 60, True), ("a" * 61, False), ("1abc", False),
     ("Abc", False), ("abc-", False), ("ab.c", False), ("", False), ("-a", False)],
)
def test_yellowdog_naming_rule(value, ok):
    assert (names.name_problem(value) is None) == ok


def paths(spec, config):
    return {tuple(map(str, p)): m for p, m in specs.problems(spec, config)}


def test_unknown_values_are_left_for_later():
    assert specs.problems(specs.WorkerPoolSpec, {"name": Unknown, "cluster_name": Unknown, "node_count": Unknown}) == []


def test_derived_pool_name_over_sixty_characters_names_the_pool_attribute():
    found = paths(specs.WorkerPoolSpec, {"cluster_name": "c" * 51, "name": "workers-x", "node_count": 1})
    assert list(found) == [("name",)]
    assert "61 characters" in found[("name",)] and "c" * 51 + "-workers-x" in found[("name",)]


def test_derived_check_waits_until_the_cluster_name_is_known():
    assert paths(specs.WorkerPoolSpec, {"cluster_name": Unknown, "name": "w", "node_count": 1}) == {}


@pytest.mark.parametrize("count, message", [(0, "at least 1"), (-3, "at least 1"), (1.5, "whole number"), (10001, "at most")])
def test_node_count_must_be_a_positive_whole_number(count, message):
    found = paths(specs.WorkerPoolSpec, {"node_count": count})
    assert message in found[("node_count",)]


def test_reserved_pool_names_are_refused():
    assert "reserved" in paths(specs.WorkerPoolSpec, {"name": "head"})[("name",)]


def test_timeouts_errors_point_into_the_block():
    assert ("timeouts", "create") in paths(specs.HeadSpec, {"timeouts": {"create": "soon"}})


def test_environment_may_not_set_provider_variables():
    found = paths(specs.WorkerPoolSpec, {"environment": {"RAY_HEAD_IP": "1.2.3.4"}})
    assert "set by the provider" in found[("environment", "('RAY_HEAD_IP',)")]


def test_api_url_must_be_http():
    assert "not an http(s) URL" in paths(specs.ProviderSpec, {"api_url": "ftp://x"})[("api_url",)]
    assert paths(specs.ProviderSpec, {"api_url": "http://127.0.0.1:8080"}) == {}


def test_cluster_name_must_leave_room_for_its_head_pool():
    assert "-head" in paths(specs.ClusterSpec, {"name": "c" * 56})[("name",)]


def test_task_group_names_are_fresh_and_valid():
    first, second = names.task_group_name("workers"), names.task_group_name("workers")
    assert first != second
    assert names.name_problem(first) is None
