"""Observability end to end: a real Prometheus on the observability node holds every Ray node's
metrics, through terraform apply against the sandbox in exec mode.

The built-in scripts run unmodified: the observability node runs Debian's ``prometheus``
(installed on the machine, so nothing is downloaded; nodes have no internet) and the targets
receiver; the head hands it Ray's own service discovery (every live node's metrics address)
every 5 seconds. Grafana is not in the package registries this suite installs from, so the
observability node runs with ``grafana = "false"`` and its provisioning files are checked
against what the head's Ray writes into its session directory.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from harness.config import Expr, cluster_config, node_script, output
from harness.platform_view import view
from harness.waits import wait_until

pytestmark = [pytest.mark.exec, pytest.mark.xdist_group("exec")]

METRICS_PORT = "10002"  # the head and worker scripts' metrics_export_port
# Prometheus scrapes every 10s; a new node's series appears within one or two scrapes after
# Ray registers it, and the head's Ray reports its node list every 5 seconds.
METRICS_TIMEOUT = 120


@pytest.fixture
def prometheus_installed():
    if shutil.which("prometheus") is None:
        pytest.skip("Prometheus is not installed: apt-get install prometheus (.ci/run installs it)")


def config(workers: int, observability_vars: dict[str, str] | None = None) -> str:
    return "\n".join([
        node_script("obs", template="observability", vars=observability_vars or {"grafana": "false"}),
        node_script("head", template="head"),
        node_script("worker", template="worker", vars={"num_cpus": "1"}),
        cluster_config("obsv", {"w": workers}, with_observability=True, wait_for_nodes=True, head_timeout="3m",
                       observability_attrs={"start_script": Expr("data.raydog_node_script.obs.content")},
                       head_attrs={"ray_start_script": Expr("data.raydog_node_script.head.content")},
                       pool_attrs={"task_script": Expr("data.raydog_node_script.worker.content")}),
        output("prometheus_url", Expr("raydog_observability.obs.prometheus_url")),
        output("dashboard_url", Expr("raydog_head.h.dashboard_url")),
    ])


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def node_series(prometheus_url: str, query: str = "ray_node_cpu_count") -> dict[str, str] | str:
    """``ray_node_cpu_count`` by instance (instance -> value), or why the query failed."""
    query = urllib.parse.urlencode({"query": query})
    try:
        body = get_json(f"{prometheus_url}/api/v1/query?{query}")
    except (OSError, ValueError) as exc:
        return f"query failed: {exc}"
    return {r["metric"]["instance"]: r["value"][1] for r in body["data"]["result"]}


def expected_instances(sandbox, head_ip: str, pool_id: str) -> set[str]:
    ips = {head_ip} | {n["privateIp"] for n in view(sandbox).live_nodes(pool_id)}
    return {f"{ip}:{METRICS_PORT}" for ip in ips}


def await_one_series_per_node(prometheus_url: str, expected: set[str]) -> dict[str, str]:
    started = time.monotonic()
    series = wait_until(lambda: node_series(prometheus_url), f"one ray_node_cpu_count series for each of {sorted(expected)}",
                        timeout=METRICS_TIMEOUT, interval=2,
                        until=lambda found: isinstance(found, dict) and set(found) == expected)
    # What the query returns, for the record (pytest -s shows it).
    query = urllib.parse.urlencode({"query": "ray_node_cpu_count"})
    print(f"after {time.monotonic() - started:.0f}s, GET {prometheus_url}/api/v1/query?{query}:")
    for result in get_json(f"{prometheus_url}/api/v1/query?{query}")["data"]["result"]:
        print(f"  {json.dumps(result, sort_keys=True)}")
    return series


def prometheus_health(dashboard_url: str) -> dict | str:
    try:
        return get_json(f"{dashboard_url}/api/prometheus_health")
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}: {exc.read()[:500]!r}"
    except (OSError, ValueError) as exc:
        return f"request failed: {exc}"


def node_directory(sandbox_dir: Path, node_id: str) -> Path:
    from raydog_sandbox.nodes.exec_runtime import safe_name

    found = list(sandbox_dir.rglob(f"nodes/{safe_name(node_id)}"))
    assert len(found) == 1, f"one directory for node {node_id}: {found}"
    return found[0]


def check_grafana_provisioning(obs_home: Path, head_tmp: Path, prometheus_url: str) -> None:
    """The observability node's Grafana files: the data source Ray's dashboard names, and the
    dashboards Ray's head writes into its session directory (same files, same uids)."""
    grafana = obs_home / "raydog-observability" / "grafana"
    datasources = yaml.safe_load((grafana / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    [source] = datasources["datasources"]
    assert (source["name"], source["type"], source["url"]) == ("Prometheus", "prometheus", "http://localhost:9090")
    providers = yaml.safe_load((grafana / "provisioning" / "dashboards" / "ray.yaml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/opt/yellowdog/agent/raydog-observability/grafana/dashboards/ray"

    # session_latest links to /tmp/ray/session_<id> as the head node sees its private /tmp.
    session = Path(os.readlink(head_tmp / "ray" / "session_latest"))
    head_metrics = head_tmp / session.relative_to("/tmp") / "metrics" / "grafana"
    head_source = yaml.safe_load((head_metrics / "provisioning" / "datasources" / "default.yml").read_text())
    [ray_source] = head_source["datasources"]
    assert (ray_source["name"], ray_source["url"]) == (source["name"], prometheus_url), \
        "the head's Ray names the same data source and points at the observability node's Prometheus"

    def uids(directory: Path) -> dict[str, str]:
        return {p.name: json.loads(p.read_text())["uid"] for p in sorted(directory.glob("*.json"))}

    ours, rays = uids(grafana / "dashboards" / "ray"), uids(head_metrics / "dashboards")
    assert "default_grafana_dashboard.json" in rays and len(rays) >= 5, rays
    assert ours == rays, "the observability node provisions Ray's own dashboards, with the uids the head's dashboard links"


def test_prometheus_scrapes_every_ray_node_through_a_resize_and_the_dashboard_reads_it(
        terraform_factory, exec_sandbox, prometheus_installed, tmp_path):
    sandbox = exec_sandbox
    tf = terraform_factory("obsv", sandbox=sandbox)
    tf.write(config(workers=1))
    tf.init()
    tf.apply()
    outputs, res = tf.outputs(), tf.resources()
    prometheus_url, dashboard_url = outputs["prometheus_url"], outputs["dashboard_url"]
    head_ip, pool_id = res["raydog_head.h"]["private_ip"], res["raydog_worker_pool.w"]["id"]

    first = await_one_series_per_node(prometheus_url, expected_instances(sandbox, head_ip, pool_id))
    assert len(first) == 2 and all(float(cpus) >= 1 for cpus in first.values()), first
    head_series = node_series(prometheus_url, 'ray_node_cpu_count{IsHeadNode="true"}')
    assert list(head_series) == [f"{head_ip}:{METRICS_PORT}"], "the head's own series is labelled as the head's"

    health = wait_until(lambda: prometheus_health(dashboard_url), "the Ray dashboard reaches Prometheus",
                        timeout=60, interval=1, until=lambda h: isinstance(h, dict) and h.get("result") is True)
    assert health["msg"] == "prometheus running"

    # Grow the pool: the new nodes are scraped without touching the observability node.
    tf.write(config(workers=3))
    tf.apply()
    grown = await_one_series_per_node(prometheus_url, expected_instances(sandbox, head_ip, pool_id))
    assert len(grown) == 4 and set(first) < set(grown)

    # Shrink it: the removed node's target goes, and with it its series (Prometheus marks it stale).
    tf.write(config(workers=2))
    tf.apply()
    shrunk = await_one_series_per_node(prometheus_url, expected_instances(sandbox, head_ip, pool_id))
    assert len(shrunk) == 3 and set(shrunk) < set(grown)

    check_grafana_provisioning(node_directory(tmp_path, res["raydog_observability.obs"]["node_id"]) / "home",
                               node_directory(tmp_path, res["raydog_head.h"]["node_id"]) / "tmp",
                               prometheus_url)

    tf.destroy()
    assert view(sandbox).nothing_live(), view(sandbox).live


def test_observability_node_without_grafana_or_internet_fails_naming_what_to_install(
        terraform_factory, exec_sandbox, prometheus_installed, tmp_path):
    """Grafana is not installed here and nodes have no internet: the task fails, saying what to install."""
    tf = terraform_factory("obsfail", sandbox=exec_sandbox)
    tf.write("\n".join([
        node_script("obs", template="observability", vars={"grafana": "true"}),
        cluster_config("obsfail", {}, with_observability=True,
                       observability_attrs={"start_script": Expr("data.raydog_node_script.obs.content")}),
    ]))
    tf.init()
    tf.apply()  # create waits until the task executes; the script then finds no Grafana
    obs = tf.resources()["raydog_observability.obs"]
    wait_until(lambda: [t["status"] for t in view(exec_sandbox).tasks(obs["task_group_id"])],
               "the observability task fails", timeout=60, interval=1, until=lambda statuses: statuses == ["FAILED"])
    [output] = node_directory(tmp_path, obs["node_id"]).rglob("taskoutput.txt")
    text = output.read_text()
    assert "Grafana is not installed on this node, and the node cannot download it from https://dl.grafana.com/" in text
    assert "apt-get install grafana" in text and "install_observability" in text
    assert "Downloading" not in text and "Prometheus on port" not in text, "nothing was downloaded or started"
    tf.destroy()
    assert view(exec_sandbox).nothing_live(), view(exec_sandbox).live
