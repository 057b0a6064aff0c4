"""The head's Ray GCS, spoken to over gRPC without Ray: which nodes have joined, which are idle,
and Ray's own drain of a node.

The provider ships as one executable and must not depend on Ray, so it speaks two RPCs of
Ray's ``ray.rpc.autoscaler.AutoscalerStateService`` (the service Ray's own autoscaler v2 and
``ray drain-node`` use) itself: ``GetClusterResourceState`` (every node: id, IP, status,
resources in use, how long it has been idle) and ``DrainNode`` (stop scheduling work on a
node and let its running work finish, up to a deadline). Only the fields read or written
here are declared, with Ray's field numbers; protobuf skips the rest. grpcio and protobuf
are already the provider's (the tf framework speaks gRPC to Terraform).
``tests/unit/test_ray_gcs.py`` checks these declarations against Ray's own.

The GCS listens on the head's Ray port (6379), the port every worker already reaches, so it
needs no port the cluster does not already open; the dashboard (8265) may not run at all.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Optional

import grpc

SERVICE = "/ray.rpc.autoscaler.AutoscalerStateService/"
# Ray's DrainNodeReason: PREEMPTION is accepted on a busy node (IDLE_TERMINATION is refused
# there); the node takes no new work and its running work may finish until the deadline.
DRAIN_REASON_PREEMPTION = 2
# Ray's NodeStatus values.
NODE_STATUS = {0: "UNSPECIFIED", 1: "RUNNING", 2: "DEAD", 3: "IDLE", 4: "DRAINING"}

# message -> [(field, number, type, repeated, message type)], Ray's numbers (src/ray/protobuf/autoscaler.proto);
# types are FieldDescriptorProto's names, looked up when the messages are first made.
_MESSAGES: dict[str, list[tuple[str, int, str, bool, Optional[str]]]] = {
    "ResourceEntry": [("key", 1, "TYPE_STRING", False, None), ("value", 2, "TYPE_DOUBLE", False, None)],
    "NodeState": [
        ("node_id", 1, "TYPE_BYTES", False, None),
        ("available_resources", 4, "TYPE_MESSAGE", True, "ResourceEntry"),
        ("total_resources", 5, "TYPE_MESSAGE", True, "ResourceEntry"),
        ("status", 8, "TYPE_INT32", False, None),  # an enum on the wire: a varint
        ("idle_duration_ms", 9, "TYPE_INT64", False, None),
        ("node_ip_address", 10, "TYPE_STRING", False, None),
    ],
    "ClusterResourceState": [("node_states", 3, "TYPE_MESSAGE", True, "NodeState"),
                             ("cluster_session_name", 7, "TYPE_STRING", False, None)],
    "GetClusterResourceStateRequest": [("last_seen_cluster_resource_state_version", 1, "TYPE_INT64", False, None)],
    "GetClusterResourceStateReply": [("cluster_resource_state", 1, "TYPE_MESSAGE", False, "ClusterResourceState")],
    "DrainNodeRequest": [
        ("node_id", 1, "TYPE_BYTES", False, None),
        ("reason", 2, "TYPE_INT32", False, None),
        ("reason_message", 3, "TYPE_STRING", False, None),
        ("deadline_timestamp_ms", 4, "TYPE_INT64", False, None),
    ],
    "DrainNodeReply": [("is_accepted", 1, "TYPE_BOOL", False, None),
                       ("rejection_reason_message", 2, "TYPE_STRING", False, None)],
}
_PACKAGE = "raydog.raygcs"  # a private pool: never clashes with Ray's own descriptors in one process


@functools.cache
def _message_classes() -> dict[str, Any]:
    """The message classes, made on first use: building descriptors at import would cost every
    provider launch (the head resource imports this module), most of which never call Ray."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field_proto = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="raydog/ray_gcs.proto", package=_PACKAGE, syntax="proto3")
    for name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind, repeated, type_name in fields:
            message.field.add(name=field_name, number=number, type=getattr(field_proto, kind),
                              label=field_proto.LABEL_REPEATED if repeated else field_proto.LABEL_OPTIONAL,
                              type_name=f".{_PACKAGE}.{type_name}" if type_name else None)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
            for name in _MESSAGES}


def __getattr__(name: str) -> Any:
    if name == "MESSAGES":  # name -> message class
        return _message_classes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RayGcsError(Exception):
    """The GCS did not answer, or refused a request; the message names the address."""


@dataclass(frozen=True)
class RayNode:
    """One node as the GCS sees it."""

    node_id: str  # hex, as `ray list nodes` shows it
    ip: str
    status: str  # RUNNING, IDLE, DRAINING or DEAD
    idle_ms: int
    busy: float  # resources in use, summed over kinds (CPU, memory, ...): 0 on an idle node

    @property
    def alive(self) -> bool:
        return self.status != "DEAD"


class RayGcs:
    """A connection to one head's GCS at ``address`` (``host:port``); each call waits at most ``call_timeout``."""

    def __init__(self, address: str, call_timeout: float = 5.0) -> None:
        self.address = address
        self.call_timeout = call_timeout
        # Straight to the head: an http(s)_proxy meant for the YellowDog API must not carry gRPC.
        self._channel = grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)])

    def __enter__(self) -> "RayGcs":
        return self

    def __exit__(self, *exc: object) -> None:
        self._channel.close()

    def _call(self, method: str, request: Any, reply: str, timeout: Optional[float] = None) -> Any:
        call = self._channel.unary_unary(SERVICE + method, request_serializer=lambda m: m.SerializeToString(),
                                         response_deserializer=_message_classes()[reply].FromString)
        try:
            return call(request, timeout=timeout or self.call_timeout)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            raise RayGcsError(f"the Ray GCS at {self.address} did not answer {method} ({code}: {detail})") from None

    def nodes(self) -> list[RayNode]:
        """Every node the GCS knows, dead ones included."""
        reply = self._call("GetClusterResourceState", _message_classes()["GetClusterResourceStateRequest"](),
                           "GetClusterResourceStateReply")
        found = []
        for state in reply.cluster_resource_state.node_states:
            total = {e.key: e.value for e in state.total_resources}
            available = {e.key: e.value for e in state.available_resources}
            busy = sum(max(total[k] - available.get(k, 0.0), 0.0) for k in total if not k.startswith("node:"))
            found.append(RayNode(node_id=state.node_id.hex(), ip=state.node_ip_address,
                                 status=NODE_STATUS.get(state.status, str(state.status)),
                                 idle_ms=state.idle_duration_ms, busy=busy))
        return found

    def drain(self, node_id: str, deadline_seconds: float, reason: str) -> None:
        """Ask Ray to drain a node: no new work goes to it, its running work may finish until
        ``deadline_seconds`` from now. RayGcsError when the GCS refuses."""
        request = _message_classes()["DrainNodeRequest"](
            node_id=bytes.fromhex(node_id), reason=DRAIN_REASON_PREEMPTION, reason_message=reason,
            deadline_timestamp_ms=int((time.time() + deadline_seconds) * 1000))
        reply = self._call("DrainNode", request, "DrainNodeReply")
        if not reply.is_accepted:
            raise RayGcsError(f"Ray refused to drain node {node_id}: {reply.rejection_reason_message}")
