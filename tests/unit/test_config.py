"""Attribute tables (validation), typed configuration and derived names, without Terraform or the platform."""

from datetime import timedelta

import pytest
from tf.types import Unknown

from raydog import names, provider
from raydog.config import durations
from raydog.config.models import Timeouts, WorkerPoolConfig
from raydog.resources import cluster, head, worker_pool


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("10m", 600), ("2h", 7200), ("1h30m", 5400), ("500ms", 0.5), ("1.5h", 5400)],
)
def test_durations_parse_like_terraform_timeouts(text, seconds):
    assert durations.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "10x", "-5m", "0s", "m10", "10m ", "1h-30m",
                                  "99999999999h"])
def test_bad_durations_are_refused_with_an_example(text):
    with pytest.raises(ValueError, match="duration|longer than zero|too long"):
        durations.parse_duration(text)


def test_format_duration_is_the_inverse_of_parse():
    for text in ("2h", "1h30m", "1m30s", "45s"):
        assert durations.format_duration(durations.parse_duration(text)) == text


@pytest.mark.parametrize(
    "value, ok",
    [("a", True), ("ray-1", True), ("r_a-y9", True), ("a" * 60, True), ("a" * 61, False), ("1abc", False),
     ("Abc", False), ("abc-", False), ("ab.c", False), ("", False), ("-a", False), ("abc\n", False)],
)
def test_yellowdog_naming_rule(value, ok):
    assert (names.name_problem(value) is None) == ok


def paths(table, config):
    return {tuple(map(str, p)): m for p, m in table.problems(config)}


def test_unknown_values_are_left_for_later():
    assert worker_pool.TABLE.problems( {"name": Unknown, "cluster_name": Unknown, "node_count": Unknown}) == []


def test_derived_pool_name_over_sixty_characters_names_the_pool_attribute():
    found = paths(worker_pool.TABLE, {"cluster_name": "c" * 51, "name": "workers-x", "node_count": 1})
    assert list(found) == [("name",)]
    assert "61 characters" in found[("name",)] and "c" * 51 + "-workers-x" in found[("name",)]


def test_derived_check_waits_until_the_cluster_name_is_known():
    assert paths(worker_pool.TABLE, {"cluster_name": Unknown, "name": "w", "node_count": 1}) == {}


@pytest.mark.parametrize("count, message", [(-3, "at least 1"), (1.5, "whole number"), (10001, "at most"),
                                            (float("inf"), "at most"), (float("nan"), "whole number"),
                                            ("1e+400", "at most 10000"), ("-1e+400", "at least 1")])
def test_node_count_must_be_a_positive_whole_number(count, message):
    found = paths(worker_pool.TABLE, {"node_count": count})
    assert message in found[("node_count",)]


def test_node_count_zero_is_left_to_the_pool_which_allows_it_only_with_autoscaling():
    # The table cannot tell a pool with autoscaling from one without: WorkerPoolResource.validate
    # refuses 0 without the block (the hostile-input catalogue's node-count-zero case).
    assert paths(worker_pool.TABLE, {"node_count": 0, "autoscaling": {"min_nodes": 0, "max_nodes": 2}}) == {}


def test_autoscaling_errors_name_the_member():
    found = paths(worker_pool.TABLE, {"autoscaling": {"min_nodes": 3, "max_nodes": 2}})
    assert found == {("autoscaling", "max_nodes"): "must be at least autoscaling.min_nodes (3); got 2"}
    found = paths(worker_pool.TABLE, {"autoscaling": {"min_nodes": -1, "max_nodes": 0, "idle_timeout": "1s"}})
    assert set(found) == {("autoscaling", "min_nodes"), ("autoscaling", "max_nodes"), ("autoscaling", "idle_timeout")}
    assert paths(worker_pool.TABLE, {"autoscaling": {"min_nodes": Unknown, "max_nodes": 2}}) == {}


def test_autoscaling_parses_into_bounds_with_a_default_idle_timeout():
    from datetime import timedelta

    from raydog.config.models import Autoscaling

    parsed = Autoscaling.parse({"min_nodes": 1, "max_nodes": 4, "idle_timeout": None})
    assert parsed == Autoscaling(min_nodes=1, max_nodes=4, idle_timeout=timedelta(minutes=5))
    assert (parsed.clamp(0), parsed.clamp(3), parsed.clamp(9)) == (1, 3, 4)
    assert Autoscaling.parse(None) is None


def test_reserved_pool_names_are_refused():
    assert "reserved" in paths(worker_pool.TABLE, {"name": "head"})[("name",)]


def test_timeouts_errors_point_into_the_block():
    assert ("timeouts", "create") in paths(head.TABLE, {"timeouts": {"create": "soon"}})


def test_environment_may_not_set_provider_variables():
    found = paths(worker_pool.TABLE, {"environment": {"RAY_HEAD_IP": "1.2.3.4"}})
    assert "set by the provider" in found[("environment", "('RAY_HEAD_IP',)")]


def test_api_url_must_be_http():
    assert "not an http(s) URL" in paths(provider.TABLE, {"api_url": "ftp://x"})[("api_url",)]
    assert paths(provider.TABLE, {"api_url": "http://127.0.0.1:8080"}) == {}


def test_cluster_name_must_leave_room_for_its_head_pool():
    assert "-head" in paths(cluster.TABLE, {"name": "c" * 56})[("name",)]


def test_task_group_names_are_fresh_and_valid():
    first, second = names.task_group_name("workers"), names.task_group_name("workers")
    assert first != second
    assert names.name_problem(first) is None


def test_state_is_parsed_once_into_typed_configuration():
    config = WorkerPoolConfig.parse({
        "cluster_id": "ydid:workreq:1", "cluster_name": "c", "compute_requirement_template_id": "t",
        "name": "cpu", "head_private_ip": "10.0.0.1", "node_count": 3.0, "task_script": "echo",
        "lifetime": "2h", "timeouts": {"create": "90s"}, "environment": None,
    })
    assert config.node_count == 3 and isinstance(config.node_count, int)
    assert config.lifetime == timedelta(hours=2) and config.environment == {} and not config.wait_for_nodes
    assert config.timeouts == Timeouts(create=timedelta(seconds=90), update=timedelta(minutes=20),
                                       delete=timedelta(minutes=10))


def test_schema_and_validation_come_from_one_declaration():
    schema = worker_pool.WorkerPoolResource.get_schema()
    declared = {a.name for a in schema.attributes}
    assert declared == {f.name for f in worker_pool.TABLE.fields}
    node_count = next(a for a in schema.attributes if a.name == "node_count")
    assert node_count.optional and node_count.computed and "Updated in place" in node_count.description
    name = next(a for a in schema.attributes if a.name == "name")
    assert name.requires_replace and name.description.endswith("Forces replacement.")


@pytest.mark.parametrize("value", ["not an ip; rm -rf /", "10.0.0.300", "head.internal", "10.0.0.1:6379", "10.0.0.0/8"])
def test_ip_attributes_must_be_ip_addresses(value):
    assert "is not an IP address" in paths(worker_pool.TABLE, {"head_private_ip": value})[("head_private_ip",)]
    assert "is not an IP address" in paths(head.TABLE, {"observability_host": value})[("observability_host",)]


def test_ip_attributes_take_ipv4_and_ipv6():
    assert paths(worker_pool.TABLE, {"head_private_ip": "10.0.0.1", "observability_host": "fd00::1"}) == {}


@pytest.mark.parametrize("key, message", [("a=b", '"="'), ("k\n", "newlines"), ("k" * 129, "at most 128"),
                                          ("aws:name", '"aws:"'), ("YD:owner", '"yd:"'), ("gcp:x", '"gcp:"')])
def test_instance_tag_keys_follow_the_cloud_limits(key, message):
    assert message in paths(worker_pool.TABLE, {"instance_tags": {key: "v"}})[("instance_tags", str((key,)))]


def test_instance_tag_values_are_printable_and_short():
    assert "at most 256" in paths(head.TABLE, {"instance_tags": {"k": "v" * 257}})[("instance_tags",)]
    assert "newlines" in paths(head.TABLE, {"instance_tags": {"k": "a\nb"}})[("instance_tags",)]


@pytest.mark.parametrize("key", ["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "IFS", "SHELLOPTS", "PS4",
                                 "YD_AGENT_HOME"])
def test_environment_keys_that_break_the_node_are_refused(key):
    found = paths(worker_pool.TABLE, {"environment": {key: "x"}})
    assert "would change how the node" in found[("environment", str((key,)))]


def test_sizes_above_the_task_data_limits_are_refused():
    from raydog.config import rules

    big_script = "#" * (rules.MAX_SCRIPT_BYTES + 1)
    assert "at most 1048576" in paths(worker_pool.TABLE, {"task_script": big_script})[("task_script",)]
    assert "at most 16384" in paths(head.TABLE, {"userdata": "x" * 16385})[("userdata",)]
    assert "at most 131072" in paths(head.TABLE, {"environment": {"BIG": "x" * 131072}})[("environment",)]


@pytest.mark.parametrize("value, message", [("secret\n", "start or end"), (" secret", "start or end"),
                                            ("se cret", "spaces"), ("se\x00cret", "control characters"),
                                            ("se\u2603cret", "outside Latin-1")])
def test_credentials_an_http_header_cannot_carry_are_refused_without_quoting_them(value, message):
    found = paths(provider.TABLE, {"application_key_secret": value})[("application_key_secret",)]
    assert message in found and "secret" not in found.replace("application_key_secret", "")


def test_api_url_user_info_is_refused_and_redacted():
    found = paths(provider.TABLE, {"api_url": "https://user:hunter2@api.example.com"})[("api_url",)]
    assert "user-info" in found and "hunter2" not in found and "<redacted>@api.example.com" in found
