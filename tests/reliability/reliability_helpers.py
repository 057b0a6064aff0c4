"""What the reliability tests share: configurations, fault accounting, and the invariants.

The invariants are the point of the suite, so they live in one place:

* ``assert_state_owns_the_platform``: every live object on the sandbox is in Terraform's
  state (nothing orphaned), and every object in state is live (nothing lost).
* ``assert_created_once``: the sandbox's whole history (finished objects included) holds
  each pool, work requirement, task group and task exactly once, so no retried create
  made a second copy - even one that was later cleaned up.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

from harness import config
from harness.platform_view import FINISHED_POOL, FINISHED_TASK, node_groups, view
from raydog.names import base_name

# The faults of issue 6, item 1 (the seed is added per run).
ISSUE_FAULTS = "5xx=0.1,429=0.05,latency=0-300ms,drop=0.05"


def record(kind: str, figures: dict) -> None:
    """Append one result line to $RAYDOG_RELIABILITY_REPORT (JSON lines), when it is set."""
    path = os.environ.get("RAYDOG_RELIABILITY_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"kind": kind, **figures}, sort_keys=True) + "\n")


def scale(variable: str, default: int) -> int:
    """A run size from the environment (full runs), else the reduced default of `make test`."""
    value = os.environ.get(variable)
    return int(value) if value else default


# The suite's clusters (harness.config): every pool waits for its nodes; the head has 5 minutes.
cluster_config = partial(config.cluster_config, wait_for_nodes=True, head_timeout="5m")


def pools_named(prefix: str, count: int, node_count: int = 1) -> dict[str, int]:
    return {f"{prefix}{i:02d}": node_count for i in range(count)}


# ── fault accounting ──────────────────────────────────────────────────────────


@dataclass
class FaultCounts:
    """What the sandbox's fault injector did, counted as it decided (our own accounting)."""

    requests: int = 0
    server_errors: Counter = field(default_factory=Counter)  # by status
    throttled: int = 0
    dropped: int = 0
    delayed: int = 0
    latency_seconds: float = 0.0

    @property
    def errors_5xx(self) -> int:
        return sum(self.server_errors.values())

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "5xx": self.errors_5xx,
            "5xx_by_status": {str(k): v for k, v in sorted(self.server_errors.items())},
            "429": self.throttled,
            "dropped_after_commit": self.dropped,
            "delayed": self.delayed,
            "latency_seconds": round(self.latency_seconds, 1),
        }

    def add(self, other: FaultCounts) -> None:
        self.requests += other.requests
        self.server_errors.update(other.server_errors)
        self.throttled += other.throttled
        self.dropped += other.dropped
        self.delayed += other.delayed
        self.latency_seconds += other.latency_seconds


def count_faults(sandbox) -> FaultCounts:
    """Wrap the sandbox's fault injector (in this process) so every decision is counted."""
    injector = sandbox.api.faults
    counts = FaultCounts()
    lock = threading.Lock()
    decide = injector.decide

    def counted(method, route=None):
        decision = decide(method, route)
        with lock:
            counts.requests += 1
            if decision.status == 429:
                counts.throttled += 1
            elif decision.status is not None:
                counts.server_errors[decision.status] += 1
            if decision.drop:
                counts.dropped += 1
            if decision.latency:
                counts.delayed += 1
                counts.latency_seconds += decision.latency
        return decision

    injector.decide = counted
    return counts


# ── invariants ────────────────────────────────────────────────────────────────


def state_ids(tf) -> dict[str, set[str]]:
    """Ids Terraform's state holds (tainted objects included), by kind."""
    ids: dict[str, set[str]] = {"pools": set(), "work_requirements": set(), "task_groups": set()}
    for address, values in tf.resources().items():
        if address.startswith("raydog_cluster.") or ".raydog_cluster." in address:
            if values.get("id"):
                ids["work_requirements"].add(values["id"])
        elif values.get("id"):
            ids["pools"].add(values["id"])
            if values.get("task_group_id"):
                ids["task_groups"].add(values["task_group_id"])
    return ids


def orphans(tf, sandbox) -> dict[str, list[str]]:
    """Live objects on the sandbox that Terraform's state does not know."""
    known = state_ids(tf)
    platform = view(sandbox)
    found = {
        "pools": sorted(f"{p['name']} ({p['id']})" for p in live_pools(platform) if p["id"] not in known["pools"]),
        "work_requirements": sorted(
            f"{w['name']} ({w['id']})" for w in platform.live_work_requirements()
            if w["id"] not in known["work_requirements"]),
        # TERMINATING is final (a pool's removal returns once its requirement is): not an orphan.
        "compute_requirements": sorted(
            c["id"] for c in platform.state["computeRequirements"]
            if c["status"] not in ("TERMINATED", "TERMINATING") and c["workerPoolId"] not in known["pools"]),
        "tasks": sorted(
            f"{g['name']}/{t['name']} ({t['status']})" for w in platform.state["workRequirements"]
            for g in w["taskGroups"] if g["id"] not in known["task_groups"]
            for t in g["tasks"] if t["status"] not in FINISHED_TASK),
    }
    return {k: v for k, v in found.items() if v}


def assert_nothing_orphaned(tf, sandbox) -> None:
    left = orphans(tf, sandbox)
    assert not left, f"live on the sandbox but not in state: {left}"


def assert_state_owns_the_platform(tf, sandbox) -> None:
    """Nothing orphaned, and every pool and work requirement in state is live."""
    assert_nothing_orphaned(tf, sandbox)
    known = state_ids(tf)
    platform = view(sandbox)
    live_ids = {p["id"] for p in live_pools(platform)}
    live_wrs = {w["id"] for w in platform.live_work_requirements()}
    assert known["pools"] <= live_ids, f"pools in state but not live: {known['pools'] - live_ids}"
    assert known["work_requirements"] <= live_wrs, (
        f"work requirements in state but not live: {known['work_requirements'] - live_wrs}")


def created_objects(sandbox) -> dict[str, int]:
    """How many objects of each kind the sandbox has ever held (finished ones included)."""
    state = sandbox.state()
    groups = [g for w in state["workRequirements"] for g in node_groups(w)]
    return {
        "work_requirements": len(state["workRequirements"]),
        "worker_pools": len(state["workerPools"]),
        "compute_requirements": len(state["computeRequirements"]),
        "task_groups": len(groups),
        "tasks": sum(len(g["tasks"]) for g in groups),
        "instances": len(state["instances"]),
        "nodes": len(state["nodes"]),
    }


def duplicates(sandbox) -> dict[str, list[str]]:
    """Names the sandbox's history holds more than once (live or finished)."""
    state = sandbox.state()
    dup = {
        "work_requirements": _repeated(f"{w['namespace']}/{w['name']}" for w in state["workRequirements"]),
        "worker_pools": _repeated(f"{p['namespace']}/{p['name']}" for p in state["workerPools"]),
        "compute_requirements": _repeated(f"{c['namespace']}/{c['name']}" for c in state["computeRequirements"]),
        "task_groups": _repeated(
            f"{w['name']}/{g['name'].rsplit('-', 1)[0]}" for w in state["workRequirements"] for g in node_groups(w)),
        "tasks": _repeated(
            f"{g['name']}/{t['name']}" for w in state["workRequirements"] for g in w["taskGroups"] for t in g["tasks"]),
    }
    return {k: v for k, v in dup.items() if v}


def _repeated(names) -> list[str]:
    return sorted(name for name, n in Counter(names).items() if n > 1)


def live_pool_names(sandbox) -> list[str]:
    return sorted(base_name(p["name"]) for p in live_pools(view(sandbox)))


def tainted(tf) -> list[str]:
    values = tf.state().get("values") or {}
    return sorted(r["address"] for r in (values.get("root_module") or {}).get("resources", []) if r.get("tainted"))


def live_pools(platform) -> list[dict]:
    """Every live worker pool (a list: two live pools of one name would both show)."""
    return [p for p in platform.state["workerPools"] if p["status"] not in FINISHED_POOL]


def is_provider(cmdline: str) -> bool:
    """A raydog provider process: the release executable Terraform starts, or (from a checkout's
    older launcher) ``python -m raydog.plugin``."""
    return "terraform-provider-raydog" in cmdline or "raydog.plugin" in cmdline


def provider_processes(tf) -> list:
    """Provider processes Terraform started for this working directory that are still running."""
    import psutil

    # Terraform starts providers in the working directory, by a path that may be relative.
    marker = str(Path(tf.workdir).resolve())
    found = []
    for proc in psutil.process_iter(["cmdline", "status", "cwd"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        here = marker in cmdline or proc.info["cwd"] == marker
        if here and is_provider(cmdline) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


# ── provider memory ───────────────────────────────────────────────────────────


@dataclass
class CommandRun:
    returncode: int
    output: str
    seconds: float
    provider_peak_rss: dict[int, int]  # provider pid -> highest RSS seen (bytes)


def run_sampled(tf, *args: str, timeout: float = 600, interval: float = 0.05) -> CommandRun:
    """Run a Terraform command, sampling the RSS of every provider process it starts."""
    import psutil

    started = time.monotonic()
    proc = tf.popen(*args)
    peaks: dict[int, int] = {}
    stop = threading.Event()

    def sample() -> None:
        try:
            parent = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            try:
                children = parent.children(recursive=True)
            except psutil.NoSuchProcess:
                return
            for child in children:
                try:
                    if is_provider(" ".join(child.cmdline())):
                        peaks[child.pid] = max(peaks.get(child.pid, 0), child.memory_info().rss)
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    pass
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        stop.set()
        sampler.join()
    return CommandRun(proc.returncode, stdout + stderr, time.monotonic() - started, peaks)
