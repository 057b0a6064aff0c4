"""The import-state migration's Terraform files: written fmt-clean, existing ones read with an HCL parser.

The platform side (inventory) and the whole command run in tests/e2e/test_import_state.py;
here the inventory is built by hand.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from harness.terraform import REPO
from hcl2.query.body import DocumentView
from raydog.migrate.cli import default_module_source
from raydog.migrate.hcl import (
    MODULE_RESOURCES,
    VERSIONS_TF,
    declares_provider,
    link_generated,
    module_resources,
    render_imports,
    render_module_call,
)
from raydog.migrate.inventory import (
    CLUSTER,
    HEAD,
    OBSERVABILITY,
    WORKER_POOL,
    Found,
    ImportStateError,
    Inventory,
    SavedState,
)
from raydog.tunnel_cli import terraform_command

WR = "ydid:workreq:000000:11111111-2222-3333-4444-555555555555"


def node(kind: str, pool: str, yellowdog_name: str, key: str | None = None, **attributes) -> Found:
    base = {"compute_requirement_template_id": "ydid:crt:000000:t", "images_id": "ubuntu-22.04",
            "instance_tags": {}, "metrics_enabled": False, "environment": {}, "lifetime": "8h"}
    return Found(kind, f"{WR}/{pool}", yellowdog_name, "task group x", {**base, **attributes}, key)


def inventory() -> Inventory:
    state = SavedState("rd", "team", None, WR, ("p1", "p2", "p3", "p4"))
    found = Inventory(state)
    found.cluster = Found(CLUSTER, WR, "rd", "work requirement, RUNNING",
                          {"id": WR, "name": "rd", "namespace": "team", "tag": "team-a"})
    found.nodes = [
        node(HEAD, "p1", "rd-head", private_ip="10.0.0.2", ray_start_script="#!/usr/bin/env bash\nray start\n",
             instance_tags={"owner": "ml", "cost-centre": "research"}, environment={"A": "${not_hcl}"},
             observability_host="10.0.0.3"),
        node(OBSERVABILITY, "p2", "rd-obs", private_ip="10.0.0.3", start_script="#!/bin/bash\n"),
        node(WORKER_POOL, "p3", "rd-01-wrkrs", "worker-nodes-01", name="worker-nodes-01", node_count=2,
             task_script="#!/bin/bash\n", metrics_enabled=True, head_private_ip="10.0.0.2",
             observability_host="10.0.0.3"),
        node(WORKER_POOL, "p4", "rd-gpu", "gpu", name="gpu", node_count=1, task_script="#!/bin/bash\n"),
    ]
    found.skipped = [("ydid:wrkrpool:000000:gone", "worker pool rd-03-wrkrs is TERMINATED")]
    return found


def fmt_diff(directory: Path) -> str:
    """What `terraform fmt` would change in ``directory`` ("" when it is fmt clean)."""
    result = subprocess.run([*terraform_command(), "fmt", "-check", "-diff", "-no-color", "."], cwd=directory,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False,
                            env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull})
    return "" if result.returncode == 0 else result.stdout + result.stderr


def test_written_files_are_terraform_fmt_clean(tmp_path):
    found = inventory()
    module_call, _scripts = render_module_call(found, "module.ray", "../modules/raydog")
    (tmp_path / "cluster.tf").write_text(module_call)
    (tmp_path / "imports.tf").write_text(render_imports(found, "module.ray", "state.json"))
    (tmp_path / "raw_imports.tf").write_text(render_imports(found, None, "state.json"))
    (tmp_path / "versions.tf").write_text(VERSIONS_TF)
    assert fmt_diff(tmp_path) == ""


def test_module_call_holds_the_adopted_settings():
    call, scripts = render_module_call(inventory(), "module.ray", "../modules/raydog")
    ray = DocumentView.parse(call).blocks("module", "ray")[0]
    assert ray.attribute("namespace").value == '"team"'
    assert ray.attribute("lifetime").value == '"8h"'
    head = ray.attribute("head").value
    assert head["name_suffix"] == '""'
    assert head["instance_tags"] == {'"cost-centre"': '"research"', '"owner"': '"ml"'}
    assert head["environment"] == {'"A"': '"$${not_hcl}"'}  # a literal, never interpolated
    pools = ray.attribute("worker_pools").value
    assert set(pools) == {'"worker-nodes-01"', '"gpu"'}
    assert pools['"worker-nodes-01"']["node_count"] == 2
    # The addresses the adopted nodes were started with stay literals (learnt from the platform,
    # they would replace the nodes); a pool started without one gets none.
    assert head["observability_host"] == '"10.0.0.3"'
    assert pools['"worker-nodes-01"']["head_private_ip"] == '"10.0.0.2"'
    assert pools['"worker-nodes-01"']["observability_host"] == '"10.0.0.3"'
    assert "head_private_ip" not in pools['"gpu"']
    assert scripts["head.sh"] == "#!/usr/bin/env bash\nray start\n"
    assert set(scripts) == {"head.sh", "observability.sh", "worker-nodes-01.sh", "gpu.sh"}


def test_imports_name_each_object_and_list_the_skipped_ids():
    imports = render_imports(inventory(), None, "state.json")
    blocks = DocumentView.parse(imports).blocks("import")
    assert [b.attribute("to").value for b in blocks] == [
        "${raydog_cluster.this}", "${raydog_head.this}", "${raydog_observability.this}",
        "${raydog_worker_pool.worker_nodes_01}", "${raydog_worker_pool.gpu}"]
    assert [b.attribute("id").value for b in blocks][3:] == [f'"{WR}/p3"', f'"{WR}/p4"']
    assert "# skipped ydid:wrkrpool:000000:gone: worker pool rd-03-wrkrs is TERMINATED\n" in imports


GENERATED = f'''\
# __generated__ by Terraform
# Please review these resources and move them into your main configuration files.

# __generated__ by Terraform from "{WR}/p3"
resource "raydog_worker_pool" "worker_nodes_01" {{
  cluster_id      = "{WR}"
  cluster_name    = "rd"
  head_private_ip = "10.0.0.2"
  name            = "worker-nodes-01"
  environment = {{
    cluster_id = "{WR}"
  }}
  task_script = <<EOT
#!/bin/bash
cluster_id = "{WR}"
EOT
  timeouts {{
    create = null
  }}
}}

# __generated__ by Terraform from "{WR}/p9"
resource "raydog_worker_pool" "other" {{
  cluster_id      = "${{var.cluster}}/x"
  head_private_ip = "10.9.9.9"
}}
'''


def test_link_replaces_only_the_adopted_objects_own_values():
    linked, count = link_generated(GENERATED, inventory())
    assert count == 3
    assert linked == (GENERATED
                      .replace(f'  cluster_id      = "{WR}"', "  cluster_id      = raydog_cluster.this.id")
                      .replace('cluster_name    = "rd"', "cluster_name    = raydog_cluster.this.name")
                      .replace('"10.0.0.2"', "raydog_head.this.private_ip"))
    assert linked.count(f'cluster_id = "{WR}"') == 2  # in a map and in a script: not attributes


def test_linked_configuration_stays_fmt_clean(tmp_path):
    (tmp_path / "generated.tf").write_text(GENERATED)
    assert fmt_diff(tmp_path) == ""
    (tmp_path / "generated.tf").write_text(link_generated(GENERATED, inventory())[0])
    assert fmt_diff(tmp_path) == ""


@pytest.mark.parametrize("source,declared", [
    ("yellowdog/raydog", True),
    ("registry.terraform.io/yellowdog/raydog", True),
    ("YellowDog/RayDog", True),
    ("hashicorp/aws", False),
    ("yellowdog/raydog-extras", False),
])
def test_provider_requirement_is_read_from_required_providers(tmp_path, source, declared):
    (tmp_path / "main.tf").write_text(textwrap.dedent(f"""\
        terraform {{
          required_providers {{
            any = {{
              source = "{source}"
            }}
          }}
        }}
    """))
    assert declares_provider(tmp_path) is declared


def test_a_mention_outside_required_providers_is_not_a_requirement(tmp_path):
    (tmp_path / "notes.tf").write_text('# uses yellowdog/raydog\nlocals {\n  source = "yellowdog/raydog"\n}\n')
    assert declares_provider(tmp_path) is False
    assert declares_provider(tmp_path / "missing") is False


def test_module_resource_names_come_from_a_local_module(tmp_path):
    module = tmp_path / "modules" / "cluster"
    module.mkdir(parents=True)
    (module / "main.tf").write_text(textwrap.dedent("""\
        resource "raydog_cluster" "main" {
          name      = var.name
          namespace = var.namespace
        }
        resource "raydog_head" "ray" {}
        resource "raydog_observability" "grafana" {
          count = 1
        }
    """))
    (module / "pools.tf").write_text('resource "raydog_worker_pool" "pools" {\n  for_each = var.pools\n}\n')
    root = tmp_path / "root"
    root.mkdir()
    assert module_resources("../modules/cluster", root) == {
        CLUSTER: "raydog_cluster.main", HEAD: "raydog_head.ray", OBSERVABILITY: "raydog_observability.grafana[0]",
        WORKER_POOL: "raydog_worker_pool.pools"}
    assert module_resources("git::https://example.com/raydog.git", root) == MODULE_RESOURCES
    assert module_resources(str(REPO / "terraform" / "modules" / "raydog"), root) == MODULE_RESOURCES


def test_configuration_that_does_not_parse_is_a_clear_error(tmp_path):
    (tmp_path / "broken.tf").write_text('terraform {\n  required_providers {\n')
    with pytest.raises(ImportStateError, match=r"cannot read .*broken\.tf as HCL"):
        declares_provider(tmp_path)
    with pytest.raises(ImportStateError, match="cannot read generated.tf as HCL"):
        link_generated('resource "raydog_cluster" "this" {\n  name = \n', inventory())


def test_default_module_source_is_this_checkouts_module(tmp_path):
    source = default_module_source(tmp_path)
    assert (tmp_path / source).resolve() == REPO / "terraform" / "modules" / "raydog"
