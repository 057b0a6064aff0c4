"""The tf framework additions, tested at the protocol boundary (real gRPC messages, no Terraform)."""

import json
import threading

import pytest

from tf import types
from tf.gen import tfplugin_pb2 as pb
from tf.schema import Attribute, Block, Schema
from tf.utils import read_dynamic_value, to_dynamic_value

from raydog import tfcompat
from raydog.provider import RaydogProvider


def timeouts():
    return tfcompat.SingleNestedBlock("timeouts", Block(attributes=[Attribute("create", types.String(), optional=True)]))


def test_single_nested_block_round_trips_a_dict_and_absence():
    block = timeouts()
    assert block.decode(block.encode({"create": "10m"})) == {"create": "10m"}
    assert block.encode(None) is None and block.decode(None) is None
    assert block.to_pb().nesting == pb.Schema.NestedBlock.NestingMode.SINGLE


def test_single_nested_block_equality_compares_members():
    block = timeouts()
    assert block.semantically_equal({"create": "1m"}, {"create": "1m"})
    assert not block.semantically_equal({"create": "1m"}, {"create": "2m"})
    assert not block.semantically_equal(None, {"create": "2m"})
    assert block.semantically_equal(None, None)


def test_complete_state_fills_missing_keys_and_drops_unknown_ones():
    schema = Schema(attributes=[Attribute("a", types.String()), Attribute("b", types.Number())], block_types=[timeouts()])
    assert tfcompat.complete_state(schema, {"a": "x", "gone": 1}) == {"a": "x", "b": None, "timeouts": None}
    assert tfcompat.complete_state(schema, None) is None


def servicer():
    return tfcompat._make_servicer_class()(RaydogProvider())


def test_upgrade_fills_new_attributes_without_a_warning():
    request = pb.UpgradeResourceState.Request(
        type_name="raydog_cluster", version=0, raw_state=pb.RawState(json=json.dumps({"id": "x", "name": "c"}).encode())
    )
    response = servicer().UpgradeResourceState(request, None)
    assert list(response.diagnostics) == []
    state = read_dynamic_value(response.upgraded_state)
    assert state["id"] == "x" and state["namespace"] is None and "timeouts" in state


def test_stop_provider_only_signals_long_operations():
    provider = RaydogProvider()
    tfcompat._make_servicer_class()(provider).StopProvider(pb.StopProvider.Request(), None)
    assert provider.stopping.is_set()
    assert not RaydogProvider().stopping.is_set()  # per provider instance, not process-wide


def test_another_tf_release_fails_fast_naming_both_versions(monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.3.0")
    monkeypatch.setattr(tfcompat, "WRITTEN_FOR_TF", "1.1.0")  # no tf-1.1.0.dist-info: the full lookup runs
    with pytest.raises(RuntimeError, match=r"written for the tf framework 1\.1\.0, but tf 1\.3\.0 is installed"):
        tfcompat._check_framework_version()


def test_the_pinned_tf_release_is_recognised_without_importlib_metadata(monkeypatch):
    import importlib.metadata

    def version(name):
        raise AssertionError("the installed release's own metadata directory answers")

    monkeypatch.setattr(importlib.metadata, "version", version)
    tfcompat._check_framework_version()
    monkeypatch.setattr(tfcompat, "WRITTEN_FOR_TF", "1.1.0")
    with pytest.raises(AssertionError, match="metadata directory answers"):
        tfcompat._check_framework_version()


def test_data_source_results_are_encoded_through_the_schema():
    config = {"template": None, "source": "echo {{ who }}", "vars": {"who": "ray"}, "content": None, "sha256": None}
    request = pb.ReadDataSource.Request(type_name="raydog_node_script", config=to_dynamic_value(config))
    response = servicer().ReadDataSource(request, None)
    assert list(response.diagnostics) == []
    state = read_dynamic_value(response.state)
    assert state["content"] == "echo ray" and len(state["sha256"]) == 64


def test_refined_unknown_values_decode_as_unknown():
    import msgpack
    from tf.types import Unknown

    packed = msgpack.packb({"name": msgpack.ExtType(12, b"\x81\x01\xc3"), "n": msgpack.ExtType(0, b"\x00")})
    decoded = read_dynamic_value(pb.DynamicValue(msgpack=packed))
    assert decoded["name"] is Unknown and decoded["n"] is Unknown


def plan_head(task_id):
    """PlanResourceChange for a head whose state (and configuration) is unchanged but for task_id."""
    from raydog.resources.head import HeadResource

    state = tfcompat.complete_state(HeadResource.get_schema(), {
        "id": "ydid:wrkrpool:000000:1", "cluster_id": "ydid:workreq:000000:1", "cluster_name": "c",
        "compute_requirement_template_id": "sandbox/ray-head", "ray_start_script": "ray start --head --block",
        "task_id": task_id, "private_ip": "10.0.0.1"})
    request = pb.PlanResourceChange.Request(
        type_name="raydog_head", prior_state=to_dynamic_value(state), proposed_new_state=to_dynamic_value(state),
        config=to_dynamic_value(state))
    return servicer().PlanResourceChange(request, None)


def test_a_node_whose_task_ended_is_planned_for_replacement_and_a_running_one_is_not():
    ended = plan_head(None)  # read() clears task_id when the node's task has ended
    assert [[step.attribute_name for step in path.steps] for path in ended.requires_replace] == [["task_id"]]
    assert not [d for d in ended.diagnostics if d.severity == pb.Diagnostic.ERROR]
    assert list(plan_head("ydid:task:000000:1:1:1").requires_replace) == []


def plan_imported_pool(private: bytes, config_changes: dict):
    """PlanResourceChange of a worker pool whose prior state came from an import."""
    from raydog.resources.worker_pool import WorkerPoolResource

    prior = tfcompat.complete_state(WorkerPoolResource.get_schema(), {
        "id": "ydid:wrkrpool:000000:1", "cluster_id": "ydid:workreq:000000:1", "cluster_name": "c",
        "compute_requirement_template_id": "ydid:crt:000000:1", "name": "cpu", "head_private_ip": "10.0.0.1",
        "node_count": 1, "task_ids": ["t1"], "namespace": "ns", "yellowdog_name": "c-cpu", "script_sha256": "x"})
    proposed = {**prior, **config_changes}
    request = pb.PlanResourceChange.Request(
        type_name="raydog_worker_pool", prior_state=to_dynamic_value(prior),
        proposed_new_state=to_dynamic_value(proposed), config=to_dynamic_value(proposed), prior_private=private)
    return servicer().PlanResourceChange(request, None)


def replaced_paths(response) -> list:
    return [[step.attribute_name for step in path.steps] for path in response.requires_replace]


def test_values_the_platform_cannot_report_are_recorded_in_place_after_an_import_only():
    imported = tfcompat.write_private({"imported_without": ["userdata", "images_id"]})
    response = plan_imported_pool(imported, {"userdata": "#!/bin/sh", "images_id": "ami-1"})
    assert replaced_paths(response) == [] and response.planned_private == imported
    created = plan_imported_pool(b"", {"userdata": "#!/bin/sh", "images_id": "ami-1"})
    assert sorted(replaced_paths(created)) == [["images_id"], ["userdata"]]


def test_import_marks_the_unreadable_attributes_and_read_keeps_private_state(monkeypatch):
    from raydog.resources.worker_pool import WorkerPoolResource

    monkeypatch.setattr(WorkerPoolResource, "import_", lambda self, ctx, id: self.full({"id": id}))
    monkeypatch.setattr(WorkerPoolResource, "read", lambda self, ctx, current: current)
    service = servicer()
    imported = service.ImportResourceState(
        pb.ImportResourceState.Request(type_name="raydog_worker_pool", id="ydid:wrkrpool:000000:1"), None)
    private = imported.imported_resources[0].private
    assert tfcompat.read_private(private) == {"imported_without": ["userdata", "images_id"]}
    read = service.ReadResource(pb.ReadResource.Request(
        type_name="raydog_worker_pool", current_state=imported.imported_resources[0].state, private=private), None)
    assert read.private == private
    assert tfcompat.read_private(b"not json") == {} and tfcompat.write_private({}) == b""


@pytest.mark.parametrize("environ, level", [
    ({}, None), ({"TF_LOG": "off"}, None), ({"TF_LOG": "trace"}, tfcompat.TRACE), ({"TF_LOG": "json"}, tfcompat.TRACE),
    ({"TF_LOG": "WARN"}, 30), ({"TF_LOG": "debug", "TF_LOG_PROVIDER": "error"}, 40), ({"TF_LOG": "nonsense"}, 5),
    ({"TF_LOG_PROVIDER": "info"}, 20),
])
def test_log_level_follows_tf_log_provider_then_tf_log(environ, level):
    assert tfcompat.log_level(environ) == level


@pytest.fixture
def logging_restored():
    """configure_logging changes process-wide settings: put them back after the test."""
    import logging
    import sys

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    yield
    root.handlers[:], level, sys.excepthook, threading.excepthook = saved
    root.setLevel(level)


def test_logging_emits_nothing_below_the_level_and_never_the_secret(capsys, logging_restored):
    import logging

    tfcompat.configure_logging({"TF_LOG": "WARN", "YD_API_KEY_SECRET": "sekrit-value"})
    try:
        log = logging.getLogger("raydog.test")
        log.info("an info line")
        log.warning("a key yd-key id:%s and a url %s", "sekrit-value\n", "https://me:pw@api.example.com/x")
        try:
            raise ValueError("Invalid header value b'yd-key id:sekrit-value\\n'")
        except ValueError:
            log.exception("failed")
    finally:
        tfcompat.configure_logging({})  # off: nothing below is emitted
    err = capsys.readouterr().err
    assert "an info line" not in err and "[WARN] raydog.test: a key yd-key id:<redacted>" in err
    assert "sekrit-value" not in err and "pw@" not in err and "https://<redacted>@api.example.com/x" in err
    assert "[ERROR] raydog.test: failed" in err and "Invalid header value" in err


def test_an_escaping_exception_reaches_terraform_redacted():
    import grpc

    from raydog import redaction

    redaction.remember_secret("escaping-secret-1234")

    def fails(request, context):
        raise ValueError("Invalid header value b'yd-key id:escaping-secret-1234'")

    class Framework:
        def intercept_service(self, continuation, details):
            return continuation(details)

    class Context:
        def abort(self, code, details):
            self.code, self.details = code, details
            raise RuntimeError("aborted")

    handler = tfcompat._RedactedErrors(Framework()).intercept_service(
        lambda details: grpc.unary_unary_rpc_method_handler(fails), None)
    context = Context()
    with pytest.raises(RuntimeError, match="aborted"):
        handler.unary_unary(None, context)
    assert context.code == grpc.StatusCode.UNKNOWN
    assert "escaping-secret-1234" not in context.details and "yd-key id:<redacted>" in context.details


def test_an_uncaught_thread_exception_is_logged_redacted(capsys, logging_restored):
    tfcompat.configure_logging({"TF_LOG": "ERROR", "YD_API_KEY_SECRET": "thread-secret-5678"})
    try:
        worker = threading.Thread(target=lambda: (_ for _ in ()).throw(ValueError("key thread-secret-5678")),
                                  name="worker")
        worker.start()
        worker.join()
    finally:
        tfcompat.configure_logging({})
    err = capsys.readouterr().err
    assert "[ERROR] raydog: uncaught exception in thread worker" in err
    assert "thread-secret-5678" not in err and "key <redacted>" in err
