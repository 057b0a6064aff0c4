"""A RayDog builder program, run on Terraform: build, grow, shrink, save, shut down.

Written the way RayDog's own examples are; the only line that differs from a program for
yellowdog-ray 2.0.0 is the import. Each call that changes the cluster is a Terraform run
in ./raydog-clusters/<name> (or RAYDOG_TERRAFORM_DIR), whose state records the cluster.

    raydog sandbox --port 8080 &
    YD_API_URL=http://127.0.0.1:8080 YD_API_KEY_ID=sandbox YD_API_KEY_SECRET=sandbox-secret \
        python build_and_scale.py

It saves the cluster's state to ``cluster-state.json`` and, unless KEEP_CLUSTER=1, shuts
the cluster down; with KEEP_CLUSTER=1, ``python shut_down_saved.py`` shuts it down later.
"""

import os
from datetime import timedelta

from raydog.builder import RayDogCluster  # was: from yellowdog_ray.raydog.builder import RayDogCluster

HEAD_SCRIPT = """#!/usr/bin/env bash
trap "ray stop; echo Ray stopped" EXIT
source /opt/yellowdog/agent/venv/bin/activate
ray start --head --port=6379 --num-cpus=0 --dashboard-host=0.0.0.0 --block
"""

WORKER_SCRIPT = """#!/usr/bin/env bash
trap "ray stop; echo Ray stopped" EXIT
source /opt/yellowdog/agent/venv/bin/activate
ray start --address="${RAY_HEAD_IP}:6379" --block
"""

cluster = RayDogCluster(
    yd_application_key_id=os.environ["YD_API_KEY_ID"],
    yd_application_key_secret=os.environ["YD_API_KEY_SECRET"],
    yd_platform_api_url=os.environ.get("YD_API_URL", "https://api.yellowdog.ai"),
    cluster_name=os.environ.get("CLUSTER_NAME", "builder-demo"),
    cluster_namespace=os.environ.get("CLUSTER_NAMESPACE", "raydog-demo"),
    cluster_tag="builder-example",
    head_node_compute_requirement_template_id=os.environ.get("HEAD_TEMPLATE", "sandbox/ray-head"),
    head_node_ray_start_script=HEAD_SCRIPT,
    cluster_lifetime=timedelta(hours=1),
    terraform_dir=os.environ.get("RAYDOG_TERRAFORM_DIR"),
)

worker_template = os.environ.get("WORKER_TEMPLATE", "sandbox/ray-worker")
cluster.add_worker_pool(worker_template, WORKER_SCRIPT, worker_pool_node_count=2)
cluster.add_worker_pool(worker_template, WORKER_SCRIPT, worker_pool_node_count=1,
                        worker_pool_internal_name="burst")

private_ip, public_ip = cluster.build(head_node_build_timeout=timedelta(minutes=10))
print(f"head node: private IP {private_ip}, public IP {public_ip}")
print(f"work requirement {cluster.work_requirement_id}, worker pools {cluster.worker_pool_internal_names}")

# More capacity while the cluster runs, then less.
extra_pool_id = cluster.add_worker_pool(worker_template, WORKER_SCRIPT, worker_pool_node_count=2,
                                        worker_pool_internal_name="extra")
print(f"added worker pool 'extra': {extra_pool_id}")
cluster.remove_worker_pool_by_internal_name("burst")
cluster.remove_worker_pool(extra_pool_id)
print(f"worker pools now: {cluster.worker_pool_internal_names}")

cluster.save_state_to_json_file("cluster-state.json")
print(f"saved the cluster's state to cluster-state.json (Terraform directory {cluster.terraform_dir})")

if os.environ.get("KEEP_CLUSTER") != "1":
    cluster.shut_down()
    print("cluster shut down")
