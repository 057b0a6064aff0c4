"""Shut down a cluster from its saved state, in another process (RayDog's proxy pattern).

Works with the JSON that ``build_and_scale.py`` saved (``terraform destroy`` in the
cluster's Terraform directory) and with JSON that RayDog 2.0.0 itself saved for a cluster
it built (the cluster is adopted into Terraform first, then destroyed).

    python shut_down_saved.py [cluster-state.json]
"""

import os
import sys

from raydog.builder import RayDogClusterProxy  # was: from yellowdog_ray.raydog.builder import ...

proxy = RayDogClusterProxy(
    yd_application_key_id=os.environ["YD_API_KEY_ID"],
    yd_application_key_secret=os.environ["YD_API_KEY_SECRET"],
    yd_platform_api_url=os.environ.get("YD_API_URL", "https://api.yellowdog.ai"),
)
proxy.load_saved_state_from_json_file(sys.argv[1] if len(sys.argv) > 1 else "cluster-state.json")
proxy.shut_down()
print("cluster shut down")
