"""How the node provider reaches the head: in the head task's environment, and in the release artifact
as a file (the provider reads its text; it never imports it)."""

from __future__ import annotations

from pathlib import Path

from raydog.autoscaler import shipping
from raydog.config.rules import PROVIDER_SET_VARIABLES


def test_the_head_gets_the_module_the_key_and_the_cluster_in_its_environment():
    environment = shipping.head_environment("http://198.18.0.1:8080", "autoscaler", "s3cret", "ydid:workreq:1", "c")
    module = (Path(shipping.__file__).parent / shipping.MODULE_FILE).read_text()
    assert environment[shipping.MODULE_VARIABLE] == module
    assert environment[shipping.KEY_SECRET_VARIABLE] == "s3cret"
    assert set(environment) == shipping.HEAD_VARIABLES
    assert shipping.HEAD_VARIABLES <= PROVIDER_SET_VARIABLES, "users cannot set them, imports leave them out"


def test_the_node_provider_imports_only_the_standard_library_and_ray():
    import ast
    import sys

    tree = ast.parse(shipping.node_provider_source())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert roots - set(sys.stdlib_module_names) - {"__future__"} == {"ray"}


def test_the_release_artifact_carries_the_node_provider_as_a_file(tmp_path):
    from raydog.packaging.build import _data_files, stage_sources

    stage = stage_sources(tmp_path)
    shipped = {Path(source).relative_to(stage).as_posix() for source, _ in _data_files(stage)}
    assert "raydog/autoscaler/raydog_node_provider.py" in shipped
    assert "raydog/autoscaler/shipping.py" not in shipped, "other Python stays compiled in the bundle"
