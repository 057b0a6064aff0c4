"""The GCS messages the provider declares by hand (raydog/ray_gcs.py) match Ray's own, field by
field, and encode to bytes Ray's generated classes read back the same (Ray is in the test
environment, never in the provider's)."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor

from raydog import ray_gcs

autoscaler_pb2 = pytest.importorskip("ray.core.generated.autoscaler_pb2")
WIRE_COMPATIBLE = {descriptor.FieldDescriptor.TYPE_ENUM: descriptor.FieldDescriptor.TYPE_INT32}


def ray_message(name: str):
    return autoscaler_pb2.DESCRIPTOR.message_types_by_name[name]


@pytest.mark.parametrize("name", [n for n in ray_gcs._MESSAGES if n != "ResourceEntry"])
def test_declared_fields_have_rays_numbers_and_wire_types(name):
    ours = ray_gcs.MESSAGES[name].DESCRIPTOR
    theirs = ray_message(name)
    for field in ours.fields:
        ray_field = theirs.fields_by_name[field.name]
        assert field.number == ray_field.number, f"{name}.{field.name}"
        assert field.type == WIRE_COMPATIBLE.get(ray_field.type, ray_field.type), f"{name}.{field.name}"
        assert (field.label == field.LABEL_REPEATED) == (ray_field.label == ray_field.LABEL_REPEATED)
        if field.message_type is not None and field.message_type.name == "ResourceEntry":
            entry = ray_field.message_type
            assert entry.GetOptions().map_entry
            assert [(f.name, f.number, f.type) for f in entry.fields] == [
                (f.name, f.number, f.type) for f in field.message_type.fields]


def test_service_methods_exist_in_ray():
    service = autoscaler_pb2.DESCRIPTOR.services_by_name["AutoscalerStateService"]
    assert ray_gcs.SERVICE == f"/{service.full_name}/"
    assert {"GetClusterResourceState", "DrainNode"} <= set(service.methods_by_name)
    reasons = autoscaler_pb2.DESCRIPTOR.enum_types_by_name["DrainNodeReason"].values_by_name
    assert reasons["DRAIN_NODE_REASON_PREEMPTION"].number == ray_gcs.DRAIN_REASON_PREEMPTION
    statuses = autoscaler_pb2.DESCRIPTOR.enum_types_by_name["NodeStatus"].values_by_number
    assert {n: v.name for n, v in statuses.items()} == ray_gcs.NODE_STATUS


def test_a_node_state_written_by_ray_reads_back_in_our_declaration():
    state = autoscaler_pb2.NodeState(node_id=bytes.fromhex("ab" * 28), node_ip_address="198.18.3.7",
                                     status=autoscaler_pb2.NodeStatus.Value("DRAINING"), idle_duration_ms=1234,
                                     total_resources={"CPU": 2.0, "node:198.18.3.7": 1.0},
                                     available_resources={"CPU": 0.5, "node:198.18.3.7": 1.0})
    reply = autoscaler_pb2.GetClusterResourceStateReply(
        cluster_resource_state=autoscaler_pb2.ClusterResourceState(node_states=[state]))
    ours = ray_gcs.MESSAGES["GetClusterResourceStateReply"].FromString(reply.SerializeToString())
    node = ours.cluster_resource_state.node_states[0]
    assert node.node_id.hex() == "ab" * 28 and node.node_ip_address == "198.18.3.7"
    assert ray_gcs.NODE_STATUS[node.status] == "DRAINING" and node.idle_duration_ms == 1234
    assert {e.key: e.value for e in node.available_resources} == {"CPU": 0.5, "node:198.18.3.7": 1.0}


def test_our_drain_request_reads_back_in_rays_declaration():
    ours = ray_gcs.MESSAGES["DrainNodeRequest"](node_id=b"\x01" * 28, reason=ray_gcs.DRAIN_REASON_PREEMPTION,
                                                reason_message="node_count lowered", deadline_timestamp_ms=99)
    theirs = autoscaler_pb2.DrainNodeRequest.FromString(ours.SerializeToString())
    assert theirs.node_id == b"\x01" * 28 and theirs.deadline_timestamp_ms == 99
    assert autoscaler_pb2.DrainNodeReason.Name(theirs.reason) == "DRAIN_NODE_REASON_PREEMPTION"
    assert theirs.reason_message == "node_count lowered"


def test_an_unreachable_gcs_is_an_error_naming_its_address_within_the_call_timeout():
    with ray_gcs.RayGcs("127.0.0.1:1", call_timeout=1.0) as gcs:
        with pytest.raises(ray_gcs.RayGcsError, match=r"127\.0\.0\.1:1"):
            gcs.nodes()
