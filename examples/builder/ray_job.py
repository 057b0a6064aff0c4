"""Build a Ray cluster with the builder, run a Ray job on it, shut it down.

RayDog-style: the scripts start Ray from the YellowDog agent's virtual environment (the
RAY_NODE_IP_ADDRESS and RAY_DASHBOARD_AGENT_LISTEN_PORT flags matter only on the sandbox,
whose nodes share one machine's network; on YellowDog they are unset), the program connects with the Ray client to the head's private IP (use ``RayTunnels`` and
``localhost`` from outside the cluster's network). On the sandbox in exec mode every node
is a local isolated node running these scripts for real:

    raydog sandbox --mode exec --port 8080 &
    YD_API_URL=http://127.0.0.1:8080 YD_API_KEY_ID=sandbox YD_API_KEY_SECRET=sandbox-secret \
        python ray_job.py
"""

import os
import random
import time
from datetime import timedelta

import ray
from raydog.builder import RayDogCluster  # was: from yellowdog_ray.raydog.builder import RayDogCluster

HEAD_SCRIPT = """#!/usr/bin/env bash
trap "ray stop; echo Ray stopped" EXIT
source /opt/yellowdog/agent/venv/bin/activate
ray start --head --port=6379 --num-cpus=0 --dashboard-host=0.0.0.0 --disable-usage-stats \\
    ${RAY_NODE_IP_ADDRESS:+--node-ip-address=$RAY_NODE_IP_ADDRESS} \\
    ${RAY_DASHBOARD_AGENT_LISTEN_PORT:+--dashboard-agent-listen-port=$RAY_DASHBOARD_AGENT_LISTEN_PORT} \\
    --block
"""

WORKER_SCRIPT = """#!/usr/bin/env bash
trap "ray stop; echo Ray stopped" EXIT
source /opt/yellowdog/agent/venv/bin/activate
ray start --address="${RAY_HEAD_IP}:6379" --num-cpus=1 --disable-usage-stats \\
    ${RAY_NODE_IP_ADDRESS:+--node-ip-address=$RAY_NODE_IP_ADDRESS} \\
    ${RAY_DASHBOARD_AGENT_LISTEN_PORT:+--dashboard-agent-listen-port=$RAY_DASHBOARD_AGENT_LISTEN_PORT} \\
    --block
"""

WORKERS = 2


def connect(address: str, wait_seconds: float = 180) -> None:
    """ray.init(address), retried: build() returns when the head's task runs, and Ray starts just after."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            ray.init(address=address)
            return
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


cluster = RayDogCluster(
    yd_application_key_id=os.environ["YD_API_KEY_ID"],
    yd_application_key_secret=os.environ["YD_API_KEY_SECRET"],
    yd_platform_api_url=os.environ.get("YD_API_URL", "https://api.yellowdog.ai"),
    cluster_name=os.environ.get("CLUSTER_NAME", "ray-job"),
    cluster_namespace=os.environ.get("CLUSTER_NAMESPACE", "raydog-demo"),
    head_node_compute_requirement_template_id=os.environ.get("HEAD_TEMPLATE", "sandbox/ray-head"),
    head_node_ray_start_script=HEAD_SCRIPT,
    cluster_lifetime=timedelta(minutes=30),
    terraform_dir=os.environ.get("RAYDOG_TERRAFORM_DIR"),
)
cluster.add_worker_pool(os.environ.get("WORKER_TEMPLATE", "sandbox/ray-worker"), WORKER_SCRIPT,
                        worker_pool_node_count=WORKERS)

try:
    private_ip, public_ip = cluster.build(head_node_build_timeout=timedelta(minutes=5))
    print(f"head node at {private_ip}")

    connect(f"ray://{private_ip}:10001")
    # build() returns once the head runs; the workers join soon after.
    deadline = time.monotonic() + 180
    while len([n for n in ray.nodes() if n["Alive"]]) < 1 + WORKERS and time.monotonic() < deadline:
        time.sleep(1)

    @ray.remote(num_cpus=1)
    def inside_circle(samples: int, seed: int) -> tuple[int, str]:
        rng = random.Random(seed)
        hits = sum(1 for _ in range(samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
        return hits, ray.util.get_node_ip_address()

    samples, tasks = 100_000, 8
    results = ray.get([inside_circle.options(scheduling_strategy="SPREAD").remote(samples, i) for i in range(tasks)])
    nodes = sorted({ip for _, ip in results})
    print(f"pi ~= {4 * sum(h for h, _ in results) / (samples * tasks):.4f}, "
          f"alive Ray nodes = {len([n for n in ray.nodes() if n['Alive']])}, tasks ran on {', '.join(nodes)}")
    ray.shutdown()
finally:
    cluster.shut_down()
    print("cluster shut down")
