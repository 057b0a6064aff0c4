"""A YellowDog node provider for Ray's own autoscaler, run by the monitor on a RayDog head.

This file is shipped to the head as it is (the head task writes it next to the autoscaling
config and puts its directory on PYTHONPATH), so it imports only the standard library and
Ray: the head has nothing else installed. It speaks YellowDog's REST API with urllib, with
its own application key, read from a file only the head task's user can read.

Ray's view and YellowDog's objects:

- a Ray node type is an autoscaled ``raydog_worker_pool``: a task group of the cluster's work
  requirement whose tag names its worker pool, and whose pool's compute requirement carries
  the bounds in its tag (``raydog-autoscaling-<min>-<max>-<idle seconds>``, written by the
  Terraform provider, so changing them in Terraform reaches the running autoscaler);
- a Ray node is one unfinished task of such a group (its id is the task id); its IP is the
  private IP of the YellowDog node that runs it;
- node tags are not stored apart: kind, type and status follow from the group and the
  task's status (tags Ray sets besides are kept in memory for the monitor's life);
- launching = resizing the pool up and adding worker tasks that run the pool's script with
  the environment of its newest task (or its task template);
  terminating (after Ray's autoscaler drained the node through the GCS) = aborting the
  task (its EXIT trap stops Ray), shutting its node down and, once the node is gone,
  resizing the pool down to its live tasks.

On every refresh the autoscaling config file is rewritten from what the platform says
(node types, bounds, idle timeout); Ray's autoscaler re-reads it on its next update.

Run ``python raydog_node_provider.py write-config CONFIG`` on the head (the head script
does) to write the first config; the environment it reads is documented in ``main``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

from ray.autoscaler.node_provider import NodeProvider
from ray.autoscaler.tags import NODE_KIND_HEAD, NODE_KIND_WORKER, STATUS_UP_TO_DATE
from ray.autoscaler.tags import TAG_RAY_NODE_KIND as TAG_KIND
from ray.autoscaler.tags import TAG_RAY_NODE_NAME as TAG_NAME
from ray.autoscaler.tags import TAG_RAY_NODE_STATUS as TAG_STATUS
from ray.autoscaler.tags import TAG_RAY_USER_NODE_TYPE as TAG_TYPE

log = logging.getLogger("raydog.autoscaler")

HEAD_NODE_TYPE = "ray.head.default"
HEAD_NODE_ID = "raydog-head"
AUTOSCALING_TAG = re.compile(r"raydog-autoscaling-(\d+)-(\d+)-(\d+)")
UNFINISHED = ("PENDING", "READY", "ALLOCATED", "DOWNLOADING", "EXECUTING", "UPLOADING")
GONE_NODE_STATUSES = ("LOST", "DEREGISTERED", "TERMINATED")
LIVE_POOL_STATUSES = ("PENDING", "CONFIGURING", "EMPTY", "IDLE", "RUNNING")
TASK_NAME = re.compile(r"node-(\d+)")
# Resources a worker script gives `ray start` (`--num-cpus=2`, `--resources='{"a": 1}'`).
RAY_START_RESOURCE = re.compile(r"--(num-cpus|num-gpus|resources)=('[^']*'|\"[^\"]*\"|[^\s\\]+)")
REQUEST_TIMEOUT = 30.0
RETRIES = 4


class YellowDogApiError(RuntimeError):
    """A YellowDog API call that failed: the method, path, status and the platform's message."""

    def __init__(self, method: str, path: str, status: Optional[int], message: str,
                 retry_after: Optional[float] = None) -> None:
        super().__init__(f"{method} {path}: {status or 'no answer'}: {message}")
        self.status = status
        self.retry_after = retry_after


def parse_bounds(tag: Optional[str]) -> Optional[tuple[int, int, int]]:
    """(min_nodes, max_nodes, idle_timeout seconds) from a compute requirement's tag, or None."""
    match = AUTOSCALING_TAG.fullmatch(tag or "")
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


class YellowDogApi:
    """The few YellowDog REST calls the autoscaler makes, with its application key."""

    def __init__(self, url: str, key_id: str, key_secret: str) -> None:
        self.url = url.rstrip("/")
        self._auth = f"yd-key {key_id}:{key_secret}"

    def call(self, method: str, path: str, query: Optional[dict] = None, body: Any = None) -> Any:
        """One API call; a 429 (nothing was done) is retried, and so are a 5xx or no answer unless it
        was a POST (which may have been applied: adding tasks again would add more nodes)."""
        for attempt in range(RETRIES + 1):
            try:
                return self._call_once(method, path, query, body)
            except YellowDogApiError as error:
                again = error.status == 429 or (method != "POST" and (error.status is None or error.status >= 500))
                if not again or attempt == RETRIES:
                    raise
                time.sleep(error.retry_after if error.retry_after is not None else min(0.5 * 2 ** attempt, 8.0))
        raise AssertionError("unreachable")

    def _call_once(self, method: str, path: str, query: Optional[dict], body: Any) -> Any:
        url = f"{self.url}/{path.lstrip('/')}"
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": self._auth, "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            try:
                detail = json.loads(detail).get("message") or detail
            except (ValueError, AttributeError):
                pass
            retry_after = error.headers.get("Retry-After") if error.headers else None
            raise YellowDogApiError(method, path, error.code, detail,
                                    float(retry_after) if retry_after and retry_after.isdigit() else None) from None
        except (urllib.error.URLError, OSError) as error:
            raise YellowDogApiError(method, path, None, str(error)) from None
        return json.loads(text) if text.strip() else None

    def get(self, path: str, query: Optional[dict] = None) -> Any:
        try:
            return self.call("GET", path, query)
        except YellowDogApiError as error:
            if error.status == 404:
                return None
            raise

    def pages(self, path: str, query: dict) -> list:
        items, slice_id = [], None
        while True:
            page = self.call("GET", path, {**query, "size": 1000, **({"sliceId": slice_id} if slice_id else {})})
            items += page.get("items") or []
            slice_id = page.get("nextSliceId")
            if not slice_id or not page.get("items"):
                return items


class PoolType:
    """One autoscaled worker pool as the autoscaler sees it on one refresh."""

    def __init__(self, name: str, group: dict, pool: dict, bounds: tuple[int, int, int]) -> None:
        self.name = name
        self.group = group
        self.pool = pool
        self.bounds = bounds
        self.min_nodes, self.max_nodes, self.idle_seconds = bounds
        self.tasks: list[dict] = []
        self.loaded = True  # whether the config Ray holds has these bounds (see refresh)


class Shrink:
    """Nodes shut down in one pool, whose size is set to its live tasks once they are gone."""

    def __init__(self, type_name: str, group_id: str) -> None:
        self.type_name = type_name
        self.group_id = group_id
        self.node_ids: set[str] = set()


def node_type_name(group: dict) -> str:
    """The Ray node type of a pool: its name in the cluster, the group's name without its suffix."""
    return re.sub(r"-[0-9a-f]{8}$", "", group.get("name") or "") or group["id"]


class YellowDogNodeProvider(NodeProvider):
    """Ray's NodeProvider for the worker pools of one RayDog cluster (see the module docstring)."""

    def __init__(self, provider_config: dict, cluster_name: str) -> None:
        super().__init__(provider_config, cluster_name)
        key_id, _, secret = open(provider_config["key_file"]).read().strip().partition(":")
        self.api = YellowDogApi(provider_config["api_url"], key_id, secret)
        self.work_requirement_id = provider_config["work_requirement_id"]
        self.head_ip = provider_config["head_ip"]
        self.config_path = provider_config.get("config_path")
        self.lock = threading.RLock()
        self.types: dict[str, PoolType] = {}
        self.tasks: dict[str, dict] = {}  # task id -> task, with "_type" and "_ip"
        self.ips: dict[str, str] = {}  # YellowDog node id -> private IP
        self.extra_tags: dict[str, dict] = {}
        self.shutting_down: dict[str, Shrink] = {}  # pool id -> the shrink waiting for its nodes to go
        self.pool_ids: dict[str, dict] = {}

    # -- the platform's view ---------------------------------------------------------------

    def refresh(self) -> None:
        """Read the cluster's autoscaled pools and their live tasks; rewrite the config file.

        Ray reads the config file at the start of each of its updates, before it asks for the
        nodes (this refresh), so it decides on the config of the previous refresh. A pool's
        nodes are shown to Ray only once the config Ray holds has the pool with its current
        bounds: shown earlier, a pool new to Ray (or back from a hold) would be a node type Ray
        does not know, whose nodes it removes, and a pool with new bounds would be judged by
        its old ones (an idle node above the old minimum removed)."""
        with self.lock:
            known = loaded_bounds(self.config_path)
            types = discover(self.api, self.work_requirement_id, self.pool_ids)
            tasks: dict[str, dict] = {}
            for pool_type in types.values():
                pool_type.loaded = known is None or known.get(pool_type.name) == (pool_type.min_nodes,
                                                                                  pool_type.max_nodes)
                for task in self.api.pages("work/tasks", {"taskGroupId": pool_type.group["id"],
                                                          "statuses": list(UNFINISHED)}):
                    task["_type"] = pool_type.name
                    task["_ip"] = self._ip_of(task)
                    pool_type.tasks.append(task)
                    if pool_type.loaded:
                        tasks[task["id"]] = task
                if not pool_type.loaded:
                    log.info("pool %s (%d..%d): shown to Ray from its next update, which reads these bounds",
                             pool_type.name, pool_type.min_nodes, pool_type.max_nodes)
            self.types, self.tasks = types, tasks
            self._finish_shrinks()
            if self.config_path:
                write_config(self.config_path, self.provider_config, self.cluster_name, types)

    def _ip_of(self, task: dict) -> Optional[str]:
        node_id = task.get("nodeId")
        if not node_id and task.get("workerId"):
            node = self.api.get(f"workerPools/workers/{task['workerId']}/node")
            node_id = node and node.get("id")
            if node:
                self.ips[node["id"]] = (node.get("details") or {}).get("privateIpAddress")
        if not node_id:
            return None
        task["nodeId"] = node_id
        if not self.ips.get(node_id):
            node = self.api.get(f"workerPools/nodes/{node_id}") or {}
            self.ips[node_id] = (node.get("details") or {}).get("privateIpAddress")
        return self.ips.get(node_id)

    def _finish_shrinks(self) -> None:
        """Once the nodes shut down in a pool are gone, set the pool's size to its live tasks: a
        resize before then could make the platform take a node that is kept. A held pool's
        shrink is finished too (the provider waits for it); a pool gone or going drops it."""
        for pool_id, shrink in list(self.shutting_down.items()):
            for node_id in list(shrink.node_ids):
                node = self.api.get(f"workerPools/nodes/{node_id}")
                if node is None or node.get("status") in GONE_NODE_STATUSES:
                    shrink.node_ids.discard(node_id)
            if shrink.node_ids:
                continue
            del self.shutting_down[pool_id]
            visible = self.types.get(shrink.type_name)
            if visible is not None and visible.pool["id"] == pool_id:
                live = len(visible.tasks)
            else:
                live = len(self.api.pages("work/tasks", {"taskGroupId": shrink.group_id,
                                                         "statuses": list(UNFINISHED)}))
            try:
                self._resize(pool_id, live)
            except YellowDogApiError as error:
                if error.status is None or error.status >= 500:
                    raise
                log.info("not resizing worker pool %s after its shrink: %s", pool_id, error)

    def _resize(self, pool_id: str, size: int) -> None:
        log.info("resizing worker pool %s to %d node(s)", pool_id, size)
        self.api.call("PUT", f"workerPools/provisioned/{pool_id}", {"size": size})

    def _bounds_unchanged(self, pool_type: PoolType) -> bool:
        """Whether the pool still has the bounds of the last refresh (read now, just before a
        launch): a held pool, or one with new bounds, gets nothing until the next refresh."""
        requirement = self.api.get(f"compute/requirements/{pool_type.pool['computeRequirementId']}") or {}
        if parse_bounds(requirement.get("tag")) == pool_type.bounds:
            return True
        log.info("pool %s: bounds now %r; launching nothing until the next refresh", pool_type.name,
                 requirement.get("tag"))
        return False

    # -- Ray's NodeProvider interface ------------------------------------------------------

    def non_terminated_nodes(self, tag_filters: dict) -> list[str]:
        self.refresh()
        with self.lock:
            ids = [HEAD_NODE_ID, *self.tasks]
            return [i for i in ids if all(self.node_tags(i).get(k) == v for k, v in tag_filters.items())]

    def is_running(self, node_id: str) -> bool:
        return node_id == HEAD_NODE_ID or (self.tasks.get(node_id) or {}).get("status") == "EXECUTING"

    def is_terminated(self, node_id: str) -> bool:
        return node_id != HEAD_NODE_ID and node_id not in self.tasks

    def node_tags(self, node_id: str) -> dict:
        if node_id == HEAD_NODE_ID:
            tags = {TAG_KIND: NODE_KIND_HEAD, TAG_TYPE: HEAD_NODE_TYPE, TAG_STATUS: STATUS_UP_TO_DATE, TAG_NAME: "head"}
        else:
            task = self.tasks.get(node_id) or {}
            running = task.get("status") == "EXECUTING" and task.get("_ip")
            tags = {TAG_KIND: NODE_KIND_WORKER, TAG_TYPE: task.get("_type", ""), TAG_NAME: task.get("name", node_id),
                    TAG_STATUS: STATUS_UP_TO_DATE if running else "pending"}
        return {**tags, **self.extra_tags.get(node_id, {})}

    def external_ip(self, node_id: str) -> Optional[str]:
        return self.internal_ip(node_id)

    def internal_ip(self, node_id: str) -> Optional[str]:
        if node_id == HEAD_NODE_ID:
            return self.head_ip
        return (self.tasks.get(node_id) or {}).get("_ip")

    def set_node_tags(self, node_id: str, tags: dict) -> None:
        with self.lock:
            self.extra_tags.setdefault(node_id, {}).update(tags)

    def create_node(self, node_config: dict, tags: dict, count: int) -> Optional[dict]:
        """Resize the pool up by ``count`` and add one worker task per new node."""
        with self.lock:
            pool_type = self.types.get(tags.get(TAG_TYPE) or node_config.get("pool", ""))
            if pool_type is None:
                raise RuntimeError(f"no autoscaled worker pool for node type {tags.get(TAG_TYPE)!r}")
            count = min(count, pool_type.max_nodes - len(pool_type.tasks))
            if count <= 0 or not pool_type.loaded or not self._bounds_unchanged(pool_type):
                return None
            every = self.api.pages("work/tasks", {"taskGroupId": pool_type.group["id"]})
            template = task_template(pool_type.group, every)
            highest = max(map(node_index, every), default=0)
            self._resize(pool_type.pool["id"], len(pool_type.tasks) + count)
            body = [{**template, "name": f"node-{highest + i}"} for i in range(1, count + 1)]
            added = self.api.call("POST", f"work/taskGroups/{pool_type.group['id']}/tasks", body=body) or []
            for task in added:
                task.update(_type=pool_type.name, _ip=None)
                self.tasks[task["id"]] = task
                pool_type.tasks.append(task)
                self.extra_tags[task["id"]] = {k: v for k, v in tags.items() if k not in (TAG_KIND, TAG_TYPE)}
            log.info("launched %d node(s) in pool %s: %s", len(added), pool_type.name,
                     ", ".join(t["id"] for t in added))
            return {t["id"]: t for t in added}

    def terminate_node(self, node_id: str) -> Optional[dict]:
        """End the node's task (its EXIT trap stops Ray) and shut its YellowDog node down; the pool
        is resized down once the node is gone (see ``_finish_shrinks``)."""
        if node_id == HEAD_NODE_ID:
            return None
        with self.lock:
            task = self.tasks.pop(node_id, None)
            if task is None:
                return None
            log.info("terminating node %s (task %s)", task.get("_ip"), node_id)
            self.api.call("PUT", f"work/tasks/{node_id}/cancel", {"abort": "True"})
            pool_type = self.types.get(task["_type"])
            if pool_type is not None:
                pool_type.tasks = [t for t in pool_type.tasks if t["id"] != node_id]
            if task.get("nodeId"):
                try:
                    self.api.call("DELETE", f"workerPools/nodes/{task['nodeId']}")
                except YellowDogApiError as error:
                    if error.status != 404:
                        raise
                else:
                    if pool_type is None:
                        return None
                    shrink = self.shutting_down.setdefault(
                        pool_type.pool["id"], Shrink(pool_type.name, pool_type.group["id"]))
                    shrink.node_ids.add(task["nodeId"])
            return None

    def terminate_nodes(self, node_ids: list[str]) -> Optional[dict]:
        for node_id in node_ids:
            self.terminate_node(node_id)
        return None

    # NodeProvider's remaining methods, which Ray may call on any provider.
    def is_readonly(self) -> bool:
        return False

    def safe_to_scale(self) -> bool:
        return True

    def post_process(self) -> None:
        return None

    def max_terminate_nodes(self) -> Optional[int]:
        return None

    def get_node_id(self, ip_address: str, use_internal_ip: bool = False) -> Optional[str]:
        return next((i for i in [HEAD_NODE_ID, *self.tasks] if self.internal_ip(i) == ip_address), None)

    def prepare_for_head_node(self, cluster_config: dict) -> dict:
        return cluster_config

    @staticmethod
    def bootstrap_config(cluster_config: dict) -> dict:
        return cluster_config

    @staticmethod
    def fillout_available_node_types_resources(cluster_config: dict) -> dict:
        return cluster_config

    def create_node_with_resources_and_labels(self, node_config: dict, tags: dict, count: int,
                                              resources: dict, labels: dict) -> Optional[dict]:
        return self.create_node(node_config, tags, count)


def discover(api: YellowDogApi, wr_id: str, pool_cache: dict) -> dict[str, PoolType]:
    """The cluster's autoscaled pools: live task groups whose pool's compute requirement has bounds."""
    wr = api.get(f"work/requirements/{wr_id}")
    if wr is None:
        return {}
    found: dict[str, PoolType] = {}
    for group in wr.get("taskGroups") or []:
        if group.get("status") in ("COMPLETED", "FAILED", "CANCELLED") or not group.get("tag"):
            continue
        pool = pool_cache.get(group["id"])
        if pool is None:
            pool = api.get(f"workerPools/{urllib.parse.quote(wr['namespace'])}/{urllib.parse.quote(group['tag'])}")
            tags = (group.get("runSpecification") or {}).get("workerTags") or []
            if pool is None or (pool.get("properties") or {}).get("workerTag") not in tags:
                continue
            pool_cache[group["id"]] = pool
        if pool.get("status") not in LIVE_POOL_STATUSES or not pool.get("computeRequirementId"):
            continue
        requirement = api.get(f"compute/requirements/{pool['computeRequirementId']}") or {}
        bounds = parse_bounds(requirement.get("tag"))
        if bounds is not None:
            name = node_type_name(group)
            found[name] = PoolType(name, group, pool, bounds)
    return found


def node_index(task: dict) -> int:
    """N of a node task named ``node-N`` (the provider's and the autoscaler's); 0 for another name."""
    match = TASK_NAME.fullmatch(task.get("name") or "")
    return int(match[1]) if match else 0


def task_template(group: dict, every: list[dict]) -> dict:
    """What a new worker task runs: a copy of the group's newest task (highest node index), else
    the group's task template. The newest task has the environment the Terraform provider last
    gave the pool's nodes: a pool re-tasked for a new head has new tasks, not a new template."""
    newest = max((t for t in every if node_index(t) and t.get("taskData")), key=node_index, default=None)
    source = newest or group.get("taskTemplate") or {}
    if not source.get("taskData"):
        raise RuntimeError(f"task group {group['id']} has no task template and no task to copy")
    task = {"taskType": source.get("taskType") or "bash", "taskData": source["taskData"],
            "arguments": ["taskdata.txt"], "environment": dict(source.get("environment") or {})}
    timeout = (group.get("runSpecification") or {}).get("taskTimeout")
    return {**task, **({"timeout": timeout} if timeout else {})}


def declared_resources(script: Optional[str]) -> dict[str, float]:
    """The Ray resources a pool's script states for its nodes (CPU, GPU and custom ones from
    `ray start`'s flags), so Ray can launch into a pool with no node running to learn them
    from; what the script leaves to Ray's detection is learnt from the first node."""
    found: dict[str, float] = {}
    for flag, raw in RAY_START_RESOURCE.findall(script or ""):
        try:
            value = shlex.split(raw)[0]
            if flag == "resources":
                custom = json.loads(value)
                if isinstance(custom, dict):
                    found.update({k: v for k, v in custom.items() if isinstance(v, (int, float)) and v >= 0})
            else:
                found["CPU" if flag == "num-cpus" else "GPU"] = float(value)
        except (ValueError, IndexError):
            continue
    return {name: int(amount) if float(amount).is_integer() else amount for name, amount in found.items()}


def autoscaling_config(provider_config: dict, cluster_name: str, types: dict[str, PoolType]) -> dict:
    """A complete Ray autoscaling config (the monitor reads it raw, with no defaults filled in)."""
    idle = min((t.idle_seconds for t in types.values()), default=300)
    node_types: dict[str, dict] = {HEAD_NODE_TYPE: {"resources": {}, "node_config": {}, "min_workers": 0,
                                                    "max_workers": 0}}
    for pool_type in types.values():
        script = (pool_type.group.get("taskTemplate") or {}).get("taskData")
        node_types[pool_type.name] = {"resources": declared_resources(script), "node_config": {"pool": pool_type.name},
                                      "min_workers": pool_type.min_nodes, "max_workers": pool_type.max_nodes}
    return {
        "cluster_name": cluster_name,
        "max_workers": sum(t.max_nodes for t in types.values()),
        "upscaling_speed": float(provider_config.get("upscaling_speed", 1.0)),
        "idle_timeout_minutes": idle / 60.0,
        "provider": provider_config,
        "auth": {},
        "available_node_types": node_types,
        "head_node_type": HEAD_NODE_TYPE,
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
        "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [],
        "worker_start_ray_commands": [], "head_node": {}, "worker_nodes": {},
    }


def loaded_bounds(path: Optional[str]) -> Optional[dict[str, tuple[int, int]]]:
    """(min, max) of each pool node type in the config file as Ray last read it; None without a
    file to compare with (a node provider used without a config path)."""
    if not path:
        return None
    try:
        with open(path) as config:
            node_types = json.load(config).get("available_node_types") or {}
    except (OSError, ValueError):
        return {}
    return {name: (node_type.get("min_workers"), node_type.get("max_workers"))
            for name, node_type in node_types.items() if name != HEAD_NODE_TYPE}


def write_config(path: str, provider_config: dict, cluster_name: str, types: dict[str, PoolType]) -> None:
    """Write the config (JSON, which YAML readers read) when it changed, atomically."""
    text = json.dumps(autoscaling_config(provider_config, cluster_name, types), indent=1, sort_keys=True)
    try:
        if open(path).read() == text:
            return
    except OSError:
        pass
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as out:
        out.write(text)
    os.replace(temporary, path)
    log.info("autoscaling config: %s", ", ".join(
        f"{t.name} {t.min_nodes}..{t.max_nodes}" for t in types.values()) or "no autoscaled pool")


def main(argv: list[str]) -> int:
    """``write-config CONFIG``: write the first autoscaling config and the key file beside it.

    Environment: RAYDOG_AUTOSCALER_API_URL, RAYDOG_AUTOSCALER_KEY_ID, RAYDOG_AUTOSCALER_KEY_SECRET,
    RAYDOG_CLUSTER_ID (the work requirement), RAYDOG_CLUSTER_NAME, and RAYDOG_HEAD_IP (else the
    address Ray would register)."""
    if len(argv) != 2 or argv[0] != "write-config":
        print("usage: raydog_node_provider.py write-config CONFIG", file=sys.stderr)
        return 2
    path = os.path.abspath(argv[1])
    key_file = os.path.join(os.path.dirname(path), "autoscaler.key")
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(f"{os.environ['RAYDOG_AUTOSCALER_KEY_ID']}:{os.environ['RAYDOG_AUTOSCALER_KEY_SECRET']}")
    head_ip = os.environ.get("RAYDOG_HEAD_IP")
    if not head_ip:
        from ray.util import get_node_ip_address

        head_ip = get_node_ip_address()
    provider_config = {
        "type": "external", "module": "raydog_node_provider.YellowDogNodeProvider",
        "api_url": os.environ["RAYDOG_AUTOSCALER_API_URL"], "key_file": key_file,
        "work_requirement_id": os.environ["RAYDOG_CLUSTER_ID"], "head_ip": head_ip, "config_path": path,
        "disable_node_updaters": True, "disable_launch_config_check": True, "foreground_node_launch": True,
    }
    write_config(path, provider_config, os.environ.get("RAYDOG_CLUSTER_NAME", "raydog"), {})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
