"""The release records the provider's schema, and the built provider answers Terraform's first
launch of every command from that record without loading its code."""

from __future__ import annotations

from raydog import go_plugin, tfcompat
from raydog.packaging import archive, layout, smoke
from raydog.provider import RaydogProvider
from tf.gen import tfplugin_pb2 as pb

from packaging_helpers import launch_provider


def _this_code_schema() -> bytes:
    servicer = tfcompat._make_servicer_class()(RaydogProvider())
    return servicer.GetProviderSchema(pb.GetProviderSchema.Request(), None).SerializeToString(deterministic=True)


def test_the_release_records_this_code_s_schema_and_the_provider_answers_from_it(release, tmp_path):
    tree = tmp_path / "package"
    archive.extract(release.archive, tree)
    recorded = tree / "_internal" / "raydog" / go_plugin.PREBUILT_SCHEMA
    assert recorded.read_bytes() == _this_code_schema()

    # The provider answers from the record (changed here to tell it from the code's answer),
    # and still loads its code for the first call that needs it.
    response = pb.GetProviderSchema.Response.FromString(recorded.read_bytes())
    response.resource_schemas["raydog_cluster"].block.description = "as recorded"
    recorded.write_bytes(response.SerializeToString(deterministic=True))
    home = tmp_path / "home"
    home.mkdir()
    proc, line = launch_provider(tree / layout.executable_name(), {
        "HOME": str(home), "PATH": "/usr/bin:/bin", "RAYDOG_PROVIDER_FORK_SERVER": "0"})
    try:
        with smoke.connected(line) as channel:
            schema = smoke.get_provider_schema(channel)
            assert schema.resource_schemas["raydog_cluster"].block.description == "as recorded"
            smoke.validate_cluster(channel)
        assert proc.wait(timeout=30) == 0  # a liveness bound: Shutdown ends it
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
