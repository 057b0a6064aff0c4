"""The "before": a Ray cluster built with RayDog 2.0.0, whose only record is its saved state.

This is how RayDog users build clusters today (``yellowdog_ray.raydog.builder``). Run it
with RayDog installed (``pip install yellowdog-ray==2.0.0``) against the sandbox or your
YellowDog account; it writes ``raydog-state.json`` for ``raydog import-state``.

    YD_API_URL=http://127.0.0.1:8080 YD_API_KEY_ID=sandbox YD_API_KEY_SECRET=sandbox-secret \
        python build_with_raydog.py
"""

import os
from datetime import timedelta

from yellowdog_ray.raydog.builder import RayDogCluster

HEAD_SCRIPT = """#!/usr/bin/env bash
trap "ray stop; echo Ray stopped" EXIT
source /opt/yellowdog/agent/venv/bin/activate
ray start --head --port=6379 --num-cpus=0 --dashboard-host=0.0.0.0 --block
"""

WORKER_SCRIPT = """#!/usr/bin/env bash
trap "ray stop; echo Ray stopped" EXIT
source /opt/yellowdog/agent/venv/bin/activate
ray start --address=$RAY_HEAD_IP:6379 --block
"""

OBSERVABILITY_SCRIPT = """#!/usr/bin/env bash
trap "echo observability stopped" EXIT
exec sleep infinity
"""

cluster = RayDogCluster(
    yd_application_key_id=os.environ["YD_API_KEY_ID"],
    yd_application_key_secret=os.environ["YD_API_KEY_SECRET"],
    yd_platform_api_url=os.environ.get("YD_API_URL", "https://api.yellowdog.ai"),
    cluster_name=os.environ.get("CLUSTER_NAME", "legacy"),
    cluster_namespace=os.environ.get("CLUSTER_NAMESPACE", "raydog-demo"),
    cluster_tag="migrated",
    head_node_compute_requirement_template_id=os.environ.get("HEAD_TEMPLATE", "sandbox/ray-head"),
    head_node_ray_start_script=HEAD_SCRIPT,
    enable_observability=True,
    observability_node_compute_requirement_template_id=os.environ.get(
        "OBSERVABILITY_TEMPLATE", "sandbox/ray-observability"),
    observability_node_start_script=OBSERVABILITY_SCRIPT,
    cluster_lifetime=timedelta(hours=2),
)
worker_template = os.environ.get("WORKER_TEMPLATE", "sandbox/ray-worker")
cluster.add_worker_pool(worker_template, WORKER_SCRIPT, worker_pool_node_count=2)
cluster.add_worker_pool(worker_template, WORKER_SCRIPT, worker_pool_node_count=3)

private_ip, public_ip = cluster.build(head_node_build_timeout=timedelta(minutes=10))
cluster.save_state_to_json_file("raydog-state.json")
print(f"head {private_ip} (public {public_ip}); worker pools {cluster.worker_pool_internal_names}")
print("saved raydog-state.json")
