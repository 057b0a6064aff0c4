"""Helpers for the builder's tests: the sandbox as a RayDog program sees it."""

from __future__ import annotations


def credentials(sandbox) -> dict:
    """RayDogCluster / RayDogClusterProxy keyword arguments for ``sandbox``."""
    return {"yd_application_key_id": sandbox.key_id, "yd_application_key_secret": sandbox.key_secret,
            "yd_platform_api_url": sandbox.url}


def live_pool_ids(sandbox) -> set[str]:
    return {p["id"] for p in sandbox.state()["workerPools"] if p["status"] not in ("SHUTDOWN", "TERMINATED")}


def live_work_requirement_ids(sandbox) -> set[str]:
    return {w["id"] for w in sandbox.state()["workRequirements"]
            if w["status"] in ("RUNNING", "HELD", "FINISHING", "CANCELLING")}


def nothing_live(sandbox) -> bool:
    return all(count == 0 for count in sandbox.state()["live"].values())


def state_resources(terraform_dir) -> dict[str, str]:
    """Address -> id of every resource in a local terraform.tfstate."""
    import json
    from pathlib import Path

    state = json.loads((Path(terraform_dir) / "terraform.tfstate").read_text())
    found = {}
    for resource in state.get("resources", []):
        if resource["mode"] != "managed":
            continue
        for instance in resource["instances"]:
            key = f"[{json.dumps(instance['index_key'])}]" if "index_key" in instance else ""
            found[f"{resource.get('module', '')}.{resource['type']}.{resource['name']}{key}".lstrip(".")] = (
                instance["attributes"].get("id"))
    return found
