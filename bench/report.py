"""The targets of issue 7, how each is read from the results, and the printed table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    limit: float
    unit: str
    read: Callable[[dict], float | None]  # the value from the results (None: not measured)


def _scale(results: dict, pools: int) -> dict | None:
    return next((run for run in results.get("scale", []) if run["pools"] == pools), None)


def _largest(results: dict) -> dict | None:
    runs = results.get("scale") or []
    return max(runs, key=lambda run: run["pools"]) if runs else None


def _seconds(step: str) -> Callable[[dict], float | None]:
    def read(results: dict) -> float | None:
        run = _scale(results, 100)
        return None if run is None else run["steps"][step]["seconds"]

    return read


def _per_pool(step: str) -> Callable[[dict], float | None]:
    def read(results: dict) -> float | None:
        return (results.get("requests_per_pool") or {}).get(step)

    return read


def _growing_routes(results: dict) -> float | None:
    growth = results.get("node_scaling")
    if not growth:
        return None
    return float(sum(len(growth["growing_routes"].get(step, {})) for step in ("apply", "plan")))


TARGETS = (
    Target("apply_100_seconds", "apply, 100 pools x 10 nodes", 15.0, "s", _seconds("apply")),
    Target("plan_100_seconds", "no-change plan (refresh), 100 pools", 5.0, "s", _seconds("plan")),
    Target("destroy_100_seconds", "destroy, 100 pools", 15.0, "s", _seconds("destroy")),
    Target("create_requests_per_pool", "API requests per pool create", 5.0, "req", _per_pool("apply")),
    Target("refresh_requests_per_pool", "API requests per pool refresh", 2.0, "req", _per_pool("plan")),
    Target("destroy_requests_per_pool", "API requests per pool destroy", 4.0, "req", _per_pool("destroy")),
    Target(
        "create_refresh_routes_growing_with_nodes",
        "create/refresh routes growing with nodes",
        0.0,
        "routes",
        _growing_routes,
    ),
    Target(
        "head_ready_overhead_seconds",
        "head-ready overhead (apply - D)",
        0.7,
        "s",
        lambda r: (r.get("head_ready") or {}).get("overhead_seconds"),
    ),
    Target(
        "provider_start_median_ms",
        "provider start, median to handshake",
        100.0,
        "ms",
        lambda r: ((r.get("provider_start") or {}).get("handshake_ms") or {}).get("median"),
    ),
)


def _versus(delay_min: float, pools: int, key: str, margin: float) -> Callable[[dict], float | None]:
    """How far past D the provider's figure is, at the largest D >= delay_min (the limit is ``margin``)."""
    def read(results: dict) -> float | None:
        cases = [c for c in (results.get("versus") or {}).get("cases", [])
                 if c["pools"] == pools and c["delay_seconds"] >= delay_min and c["provider"][key] is not None]
        if not cases:
            return None
        return round(max(c["provider"][key] - c["delay_seconds"] for c in cases), 3)
    return read


def _growth_ratio(pools: int) -> Callable[[dict], float | None]:
    def read(results: dict) -> float | None:
        row = next((r for r in (results.get("growth") or {}).get("rows", []) if r["pools"] == pools), None)
        return None if row is None else row["floor_ratio"]
    return read


TARGETS = TARGETS + (
    Target("versus_apply_past_delay", "apply returns - D (D >= 2 s, 10 pools)", 1.0, "s",
           _versus(2.0, 10, "returns_seconds", 1.0)),
    Target("versus_executing_past_delay", "all nodes executing - D (D >= 2 s, 10 pools)", 1.5, "s",
           _versus(2.0, 10, "all_executing_seconds", 1.5)),
    Target("growth_200_floor_ratio", "apply at 200 pools / terraform_data floor", 3.0, "x", _growth_ratio(200)),
)


def evaluate(results: dict) -> list[dict]:
    """Each target with its measured value and whether it is met (None when not measured)."""
    rows = []
    for target in TARGETS:
        value = target.read(results)
        rows.append(
            {
                "key": target.key,
                "label": target.label,
                "limit": target.limit,
                "unit": target.unit,
                "value": value,
                "met": None if value is None else value <= target.limit,
            }
        )
    return rows


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(results: dict) -> str:
    """The printed summary: scale steps with floor ratios, then every target."""
    lines = []
    scale = results.get("scale") or []
    if scale:
        lines.append(
            "Scale (wall seconds; x = ratio to the terraform_data floor; req = API requests; "
            "RSS = provider peak MB)"
        )
        lines.append(
            f"{'pools':>5} {'nodes':>5}  {'step':<8} {'seconds':>8} {'floor':>6} {'x':>6} "
            f"{'cpu s':>6} {'req':>6} {'launch':>6} {'RSS':>6}"
        )
        for run in scale:
            floor = run.get("floor", {}).get("steps", {})
            for step, data in run["steps"].items():
                floor_seconds = (floor.get(step) or {}).get("seconds")
                ratio = (run.get("floor_ratio") or {}).get(step)
                lines.append(
                    f"{run['pools']:>5} {run['nodes_per_pool']:>5}  {step:<8} {_fmt(data['seconds']):>8} "
                    f"{_fmt(floor_seconds):>6} {_fmt(ratio, 1):>6} {_fmt(data.get('cpu_seconds')):>6} "
                    f"{_fmt((data.get('requests') or {}).get('total')):>6} {_fmt(data.get('provider_launches')):>6} "
                    f"{_fmt(data.get('provider_peak_rss_mb'), 0):>6}"
                )
        lines.append("")
    per_pool = results.get("requests_per_pool")
    if per_pool:
        lines.append(
            "API requests per worker pool ("
            + per_pool.get("basis", "")
            + "): "
            + ", ".join(f"{step} {_fmt(value, 1)}" for step, value in per_pool.items() if step != "basis")
        )
    growth = results.get("node_scaling")
    if growth:
        growing = {step: routes for step, routes in growth["growing_routes"].items() if routes}
        lines.append(
            f"Routes whose count grows with nodes per pool ({growth['nodes'][0]} -> {growth['nodes'][1]}): "
            + (
                "none"
                if not growing
                else "; ".join(f"{step}: {', '.join(routes)}" for step, routes in growing.items())
            )
        )
    head = results.get("head_ready")
    if head:
        lines.append(
            f"Head ready: D = {head['provision_delay_seconds']} s, apply {_fmt(head['apply_seconds'])} s "
            f"(with D = 0: {_fmt(head['apply_seconds_no_delay'])} s); overhead {_fmt(head['overhead_seconds'])} s, "
            f"of which noticing the head executing {_fmt(head['detection_seconds'])} s"
        )
    start = results.get("provider_start")
    if start:
        lines.append(
            f"Provider start ({start['samples']} launches): handshake median {_fmt(start['handshake_ms']['median'], 0)} ms "
            f"(p90 {_fmt(start['handshake_ms']['p90'], 0)}), schema answered median "
            f"{_fmt(start['schema_ms']['median'], 0)} ms, cluster validated median "
            f"{_fmt((start.get('validate_ms') or {}).get('median'), 0)} ms (cold: a command's first launch)"
        )
        warm = start.get("warm")
        if warm:
            lines.append(
                f"Provider start, a command's later launches (forked from its warm copy): handshake median "
                f"{_fmt(warm['handshake_ms']['median'], 0)} ms (p90 {_fmt(warm['handshake_ms']['p90'], 0)}), schema "
                f"answered median {_fmt(warm['schema_ms']['median'], 0)} ms, cluster validated median "
                f"{_fmt(warm['validate_ms']['median'], 0)} ms"
            )
    exec_mode = results.get("exec")
    if exec_mode:
        if exec_mode.get("status") == "ok":
            lines.append(
                f"Exec mode (quickstart): apply {_fmt(exec_mode['apply_seconds'])} s, all Ray nodes alive "
                f"{_fmt(exec_mode['all_nodes_alive_seconds'])} s after apply started"
            )
        else:
            lines.append(f"Exec mode: {exec_mode.get('status')}: {exec_mode.get('reason', '')}")
    if results.get("versus"):
        from bench.versus import table as versus_table

        lines += ["", "RayDog's builder (yellowdog-ray 2.0.0) and the provider, head + observability + N pools "
                  "of 2 nodes (medians of interleaved runs):", versus_table(results["versus"])]
    if results.get("growth"):
        from bench.versus import growth_table

        lines += ["", "Growth with the number of pools (versus topology, apply):", growth_table(results["growth"])]
    lines.append("")
    lines.append(f"{'target':<44} {'limit':>9} {'value':>9}  met")
    for row in results.get("targets") or evaluate(results):
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        lines.append(
            f"{row['label']:<44} {_fmt(row['limit'], 0 if float(row['limit']).is_integer() else 1) + ' ' + row['unit']:>9} "
            f"{_fmt(row['value']):>9}  {met}"
        )
    machine = results.get("machine") or {}
    if machine:
        lines.append("")
        lines.append(
            f"Terraform {machine.get('terraform')} ({machine.get('terraform_command')}); "
            f"{machine.get('cpus')} CPUs; load average {machine.get('loadavg_start')} at start, "
            f"{machine.get('loadavg_end')} at end (other work on the machine inflates wall times)"
        )
    return "\n".join(lines)
