"""Talk to a started provider as Terraform does: over the unix socket and TLS certificate of
its go-plugin handshake line. The build checks a freshly frozen provider with it (its code
loads only after the handshake, so a module PyInstaller missed shows in the first call), and
the bench times the calls Terraform makes first.
"""

from __future__ import annotations

import base64
import os
from contextlib import contextmanager


class HandshakeError(ValueError):
    """The line is not a go-plugin handshake of protocol 1, tfplugin6."""


def _pem(der_b64: str) -> bytes:
    der = base64.b64decode(der_b64 + "=" * (-len(der_b64) % 4))
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n").encode()


@contextmanager
def connected(handshake_line: bytes | str):
    """A gRPC channel to the provider that printed ``handshake_line``; the provider is asked to
    shut down when the block ends."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # not the GOAWAY notice of every provider's exit
    import grpc
    from tf.gen import grpc_controller_pb2 as controller_pb
    from tf.gen import grpc_controller_pb2_grpc as controller_rpc

    text = handshake_line.decode(errors="replace") if isinstance(handshake_line, bytes) else handshake_line
    parts = text.strip().split("|")
    if len(parts) != 6 or parts[:3] != ["1", "6", "unix"]:
        raise HandshakeError(f"unexpected handshake line from the provider: {text[:200]!r}")
    credentials = grpc.ssl_channel_credentials(root_certificates=_pem(parts[5]))
    options = [("grpc.ssl_target_name_override", "localhost"), ("grpc.default_authority", "localhost")]
    with grpc.secure_channel(f"unix:{parts[3]}", credentials, options=options) as channel:
        try:
            yield channel
        finally:
            try:
                controller_rpc.GRPCControllerStub(channel).Shutdown(controller_pb.Empty(), timeout=5)
            except grpc.RpcError:
                pass  # the provider may close the connection as it stops


def provider_stub(channel):
    from tf.gen import tfplugin_pb2_grpc as rpc

    return rpc.ProviderStub(channel)


def get_provider_schema(channel, timeout: float = 30):
    """GetProviderSchema, the first call of every Terraform command; raises if it has no resources."""
    from tf.gen import tfplugin_pb2 as pb

    response = provider_stub(channel).GetProviderSchema(pb.GetProviderSchema.Request(), timeout=timeout)
    errors = [d.summary for d in response.diagnostics if d.severity == d.ERROR]
    if errors or not response.resource_schemas:
        raise RuntimeError(f"the provider answered GetProviderSchema without resource schemas: {errors}")
    return response


def provider_schema_bytes(channel, timeout: float = 30) -> bytes:
    """GetProviderSchema's answer (checked as get_provider_schema checks it), serialized
    deterministically (map entries sorted), so equal schemas give equal bytes."""
    return get_provider_schema(channel, timeout=timeout).SerializeToString(deterministic=True)


def validate_cluster(channel, timeout: float = 30) -> None:
    """ValidateResourceConfig of a valid raydog_cluster (the first call of Terraform's
    validation launch: one that needs the provider's code); raises if it is found invalid."""
    from tf.gen import tfplugin_pb2 as pb
    from tf.utils import to_dynamic_value

    config = {"id": None, "name": "smoke", "namespace": "smoke", "tag": None, "status": None, "timeouts": None}
    request = pb.ValidateResourceConfig.Request(type_name="raydog_cluster", config=to_dynamic_value(config))
    response = provider_stub(channel).ValidateResourceConfig(request, timeout=timeout)
    if list(response.diagnostics):
        raise RuntimeError(f"the provider found a valid raydog_cluster invalid: {list(response.diagnostics)}")
