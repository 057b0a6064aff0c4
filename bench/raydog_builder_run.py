"""RayDog's own builder (yellowdog-ray 2.0.0, unmodified), driven the way RayDog's examples do.

Run by ``bench.versus`` with the interpreter of the separate RayDog venv (bench/.raydog-venv),
never imported by the bench itself. Builds head + observability + N worker pools of M nodes
against the sandbox at YD_API_URL with the key in YD_API_KEY_ID / YD_API_KEY_SECRET, prints
one JSON line when ``build()`` returns, then waits for a line on stdin and shuts the cluster down.
"""

import json
import os
import sys
import time

started = time.perf_counter()

from yellowdog_ray.raydog.builder import RayDogCluster  # noqa: E402 - the import is part of the cost

SCRIPT = "#!/usr/bin/env bash\ntrap 'ray stop' EXIT\nray start --block\n"


def main() -> int:
    pools, nodes = int(sys.argv[1]), int(sys.argv[2])
    cluster = RayDogCluster(
        yd_application_key_id=os.environ["YD_API_KEY_ID"],
        yd_application_key_secret=os.environ["YD_API_KEY_SECRET"],
        yd_platform_api_url=os.environ["YD_API_URL"],
        cluster_name="versus",
        cluster_namespace="bench",
        head_node_compute_requirement_template_id="sandbox/ray-head",
        head_node_ray_start_script=SCRIPT,
        enable_observability=True,
        observability_node_compute_requirement_template_id="sandbox/ray-observability",
        observability_node_start_script=SCRIPT,
    )
    for index in range(pools):
        cluster.add_worker_pool(
            worker_node_compute_requirement_template_id="sandbox/ray-worker",
            worker_node_task_script=SCRIPT,
            worker_pool_node_count=nodes,
            worker_pool_internal_name=f"p{index:03d}",
        )
    cluster.build()
    print(json.dumps({"built_seconds": time.perf_counter() - started, "cpu_seconds": time.process_time()}),
          flush=True)
    sys.stdin.readline()
    cluster.shut_down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
