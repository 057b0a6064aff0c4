"""Bad input fails before any API call, with a clear message on the attribute's line.

The catalogue below is one table of invalid configurations. Values are literals (known at
`terraform validate`), except in the plan-time cases, whose values come from another
resource and so are checked when `terraform plan` knows them. Each case is its own block
(or blocks), independent of the others, so a whole table is checked in ONE Terraform run
(Terraform validates independent blocks independently) and every case then checks its own
diagnostics: exactly the expected errors, each on the line of the expected attribute (or
map key) inside the case's block, in both `validate -json` and the human `plan` output.
A few cases are also run alone to show that running them together changes nothing.

Contract warnings (a head script without an EXIT trap, ...) are a separate table: they
are warnings on the script attribute, and `terraform validate` still succeeds.

Not in the catalogue: two raydog_worker_pool resources with the same name and
cluster_name. Terraform validates and plans each resource on its own, and nothing in a
request tells one resource instance from another, so the provider cannot see the clash
at validate or plan time without asking the platform; the module refuses duplicate keys
of its pools map, and a check at create time belongs to the resources.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Optional

import pytest
from raydog.sandbox.server import start_sandbox

from harness import config
from harness.config import Expr
from harness.terraform import PROVIDER_BLOCK, Terraform

WR_ID = "ydid:workreq:000000:11111111-2222-3333-4444-555555555555"
CLUSTER = {"name": "demo", "namespace": "tests"}
POOL = {
    "cluster_id": WR_ID,
    "cluster_name": "demo",
    "name": "cpu",
    "compute_requirement_template_id": "sandbox/ray-worker",
    "head_private_ip": "10.0.0.1",
    "node_count": 1,
}
HEAD = {"cluster_id": WR_ID, "cluster_name": "demo", "compute_requirement_template_id": "sandbox/ray-head"}
OBSERVABILITY = {**HEAD, "compute_requirement_template_id": "sandbox/ray-observability"}
LABEL = "__LABEL__"  # stands for the case's block label in a case's HCL
NAME_RULE = "must start with a lowercase letter, end with a letter or digit"


# A case is written as Python values (harness.config) so that the table stays readable.


def cluster(**attrs) -> str:
    return config.cluster(label=LABEL, **{**CLUSTER, **attrs})


def pool(**attrs) -> str:
    return config.worker_pool(label=LABEL, **{**POOL, **attrs})


def head(**attrs) -> str:
    return config.head(label=LABEL, **{**HEAD, **attrs})


def observability(**attrs) -> str:
    return config.observability(label=LABEL, **{**OBSERVABILITY, **attrs})


def script(**attrs) -> str:
    return config.node_script(LABEL, **attrs)


def aliased_provider(**attrs) -> str:
    """A provider configuration of its own (alias = the case label) and a resource that uses it."""
    return config.provider(alias=LABEL, **attrs) + config.cluster(label=LABEL, provider=Expr(f"raydog.{LABEL}"),
                                                                  **CLUSTER)


# ---------------------------------------------------------------------------------------
# The catalogue


@dataclass(frozen=True)
class Case:
    """An invalid configuration and what Terraform must say about it.

    ``attribute`` is the attribute, nested attribute or map key whose line the diagnostic
    points at (None: the block itself), in the case's first block or in the block of type
    ``block``; ``message`` is part of its summary or detail.
    """

    id: str
    hcl: str
    attribute: Optional[str]
    message: str
    severity: str = "error"
    block: Optional[str] = None

    @property
    def label(self) -> str:
        return self.id.replace("-", "_")


CASES = [
    # Names that break YellowDog's rule, as given and as derived (<cluster>-<pool>).
    Case("cluster-name-uppercase", cluster(name="Demo"), "name", NAME_RULE),
    Case("cluster-name-leading-digit", cluster(name="1demo"), "name", NAME_RULE),
    Case("cluster-name-trailing-dash", cluster(name="demo-"), "name", NAME_RULE),
    Case("cluster-name-dots", cluster(name="demo.prod"), "name", NAME_RULE),
    Case("cluster-name-empty", cluster(name=""), "name", "must not be empty"),
    Case("cluster-name-over-60", cluster(name="c" * 61), "name",
         "61 characters long; YellowDog allows at most 60"),
    Case("cluster-name-too-long-for-its-head", cluster(name="c" * 56), "name", f'"{"c" * 56}-head"'),
    Case("cluster-namespace-spaces", cluster(namespace="team a"), "namespace", NAME_RULE),
    Case("cluster-tag-punctuation", cluster(tag="prod!"), "tag", NAME_RULE),
    Case("pool-name-uppercase", pool(name="GPU"), "name", NAME_RULE),
    Case("pool-name-dots", pool(name="gpu.large"), "name", NAME_RULE),
    Case("pool-name-empty", pool(name=""), "name", "must not be empty"),
    Case("pool-name-reserved-head", pool(name="head"), "name", "reserved"),
    Case("pool-name-reserved-obs", pool(name="obs"), "name", "reserved"),
    Case("pool-name-over-51", pool(name="p" * 52), "name", "52 characters long; at most 51"),
    Case("pool-derived-name-over-60", pool(cluster_name="c" * 30, name="p" * 30), "name",
         "61 characters long; YellowDog allows at most 60"),
    Case("pool-cluster-name-invalid", pool(cluster_name="Demo"), "cluster_name", NAME_RULE),
    Case("head-derived-name-over-60", head(cluster_name="c" * 56), "cluster_name", f'"{"c" * 56}-head"'),
    Case("observability-derived-name-over-60", observability(cluster_name="c" * 57), "cluster_name",
         f'"{"c" * 57}-obs"'),
    # Node counts.
    Case("node-count-zero", pool(node_count=0), "node_count", "must be at least 1"),
    Case("node-count-negative", pool(node_count=-2), "node_count", "must be at least 1 (got -2)"),
    Case("node-count-fractional", pool(node_count=1.5), "node_count", "whole number of nodes, not 1.5"),
    Case("node-count-over-10000", pool(node_count=10001), "node_count", "at most 10000"),
    Case("node-count-not-a-number", pool(node_count="three"), "node_count", "a number is required"),
    # Durations.
    Case("lifetime-without-unit", pool(lifetime="90"), "lifetime", '"90" is not a duration'),
    Case("lifetime-days", head(lifetime="2d"), "lifetime", '"2d" is not a duration'),
    Case("lifetime-zero", pool(lifetime="0s"), "lifetime", "must be longer than zero"),
    Case("timeouts-create-words", head(timeouts={"create": "5 minutes"}), "create",
         '"5 minutes" is not a duration'),
    Case("timeouts-update-negative", pool(timeouts={"update": "-10m"}), "update", '"-10m" is not a duration'),
    Case("timeouts-delete-empty", observability(timeouts={"delete": ""}), "delete", "must be a duration"),
    # Ids and references.
    Case("cluster-id-not-a-work-requirement", pool(cluster_id="wr-1234"), "cluster_id",
         "is not a work requirement id"),
    Case("cluster-id-of-a-compute-requirement", head(cluster_id="ydid:cmpreq:000000:1111"), "cluster_id",
         "is not a work requirement id"),
    Case("template-id-empty", pool(compute_requirement_template_id=""), "compute_requirement_template_id",
         "must not be empty"),
    Case("template-id-missing", head(compute_requirement_template_id=None), None,
         '"compute_requirement_template_id" is required'),
    Case("head-private-ip-empty", pool(head_private_ip=""), "head_private_ip", "must not be empty"),
    # Task environment and tags.
    Case("environment-overrides-ray-head-ip", pool(environment={"RAY_HEAD_IP": "10.9.9.9"}), "RAY_HEAD_IP",
         "set by the provider"),
    Case("environment-overrides-deprecated-head-ip",
         pool(environment={"A": "1", "RAY_HEAD_NODE_PRIVATE_IP": "x"}),
         "RAY_HEAD_NODE_PRIVATE_IP", "set by the provider"),
    Case("environment-overrides-observability-host", head(environment={"OBSERVABILITY_HOST": "10.0.0.9"}),
         "OBSERVABILITY_HOST", "set by the provider"),
    Case("environment-name-with-dash", pool(environment={"MY-VAR": "1"}), "MY-VAR", "not valid"),
    Case("environment-name-leading-digit", observability(environment={"9LIVES": "1"}), "9LIVES", "not valid"),
    Case("instance-tag-empty-key", pool(instance_tags={"": "x"}), "", "must not be empty"),
    # raydog_node_script.
    Case("script-unknown-template", script(template="gpu"), "template", 'Unknown template "gpu"'),
    Case("script-neither-template-nor-source", script(vars={"a": "1"}), None, "Set `template`"),
    Case("script-both-template-and-source", script(template="worker", source="echo hi"), "source",
         "only one of `template` and `source`"),
    Case("script-undefined-variable", script(source="echo {{ greeting }}", vars={"name": "x"}), "source",
         "undefined variable 'greeting'"),
    Case("script-unknown-builtin-variable", script(template="worker", vars={"num_cpu": "2"}), "num_cpu",
         "unknown variable 'num_cpu'"),
    Case("script-jinja-syntax-error", script(source="{% if ray %}\necho ray\n"), "source", "syntax error"),
    Case("script-undefined-variable-with-unknown-values",
         cluster() + script(source="{{ ip }}:{{ port }}", vars={"ip": Expr(f"raydog_cluster.{LABEL}.id")}),
         "source", "undefined variable 'port'", block="raydog_node_script"),
]

# The provider block: each case is a provider configuration of its own (an alias), which
# Terraform serves with a provider process of its own, so these are validated apart from
# the rest (and not planned) to keep the test quick.
PROVIDER_CASES = [
    Case("provider-api-url-without-scheme", aliased_provider(api_url="api.yellowdog.ai"), "api_url",
         "is not an http(s) URL"),
    Case("provider-api-url-wrong-scheme", aliased_provider(api_url="ftp://api.yellowdog.ai"), "api_url",
         "is not an http(s) URL"),
    Case("provider-key-id-empty", aliased_provider(application_key_id=""), "application_key_id",
         "must not be empty"),
    Case("provider-key-secret-blank", aliased_provider(application_key_secret="  "), "application_key_secret",
         "must not be empty"),
]

# Values that come from another resource are known only at plan time. Each case has its
# own (valid) raydog_cluster; the provider is configured once (one credential check).
PLAN_CASES = [
    Case("plan-derived-name-over-60",
         cluster(name="c" * 40) + pool(cluster_id=Expr(f"raydog_cluster.{LABEL}.id"),
                                       cluster_name=Expr(f"raydog_cluster.{LABEL}.name"), name="p" * 25),
         "name", "66 characters long", block="raydog_worker_pool"),
    Case("plan-cluster-id-given-the-name",
         cluster(name="named") + head(cluster_id=Expr(f"raydog_cluster.{LABEL}.name"), cluster_name="named"),
         "cluster_id", '"named" is not a work requirement id', block="raydog_head"),
    Case("plan-environment-key-from-a-resource",
         cluster(name="envy", namespace="team-a")
         + pool(cluster_id=Expr(f"raydog_cluster.{LABEL}.id"), cluster_name="envy",
                environment=Expr(f'{{ (raydog_cluster.{LABEL}.namespace) = "x" }}')),
         "environment", '"team-a" is not valid in bash', block="raydog_worker_pool"),
    Case("plan-lint-warning-from-rendered-script",
         cluster(name="lint") + script(source="ray start --head --port=6379 --block\n")
         + head(cluster_id=Expr(f"raydog_cluster.{LABEL}.id"), cluster_name="lint",
                ray_start_script=Expr(f"data.raydog_node_script.{LABEL}.content")),
         "ray_start_script", "No EXIT trap stops Ray", severity="warning", block="raydog_head"),
]

HEAD_WITHOUT_TRAP = "#!/bin/bash\nray start --head --port=6379 --block\n"
WORKER_FIXED_ADDRESS = "#!/bin/bash\ntrap 'ray stop' EXIT\nray start --address=10.0.0.1:6379 --block\n"
WORKER_NOT_BLOCKING = "#!/bin/bash\ntrap 'ray stop' EXIT\nray start --address=\"$RAY_HEAD_IP:6379\"\n"
WORKER_EXEC = "#!/bin/bash\ntrap 'ray stop' EXIT\nexec ray start --address=\"$RAY_HEAD_IP:6379\" --block\n"
HEAD_AS_WORKER = "#!/bin/bash\ntrap 'ray stop' EXIT\nray start --address=\"$RAY_HEAD_IP:6379\" --block\n"
TRAP_WITHOUT_STOP = "#!/bin/bash\ntrap 'echo bye' EXIT\nray start --address=\"$RAY_HEAD_IP:6379\" --block\n"

WARNING_CASES = [
    Case("head-script-without-exit-trap", head(ray_start_script=HEAD_WITHOUT_TRAP), "ray_start_script",
         "No EXIT trap stops Ray", "warning"),
    Case("worker-script-fixed-head-address", pool(task_script=WORKER_FIXED_ADDRESS), "task_script",
         "does not read RAY_HEAD_IP", "warning"),
    Case("worker-script-without-block", pool(task_script=WORKER_NOT_BLOCKING), "task_script",
         "without --block", "warning"),
    Case("worker-script-exec-skips-trap", pool(task_script=WORKER_EXEC), "task_script",
         "skips the EXIT trap", "warning"),
    Case("head-script-starts-a-worker", head(ray_start_script=HEAD_AS_WORKER), "ray_start_script",
         "lacks --head", "warning"),
    Case("worker-exit-trap-without-ray-stop", pool(task_script=TRAP_WITHOUT_STOP), "task_script",
         "does not stop Ray", "warning"),
]


# ---------------------------------------------------------------------------------------
# Running a table through Terraform


@dataclass
class Diagnostic:
    severity: str
    summary: str
    detail: str
    line: Optional[int]

    @property
    def text(self) -> str:
        return " ".join(f"{self.summary} {self.detail}".split())


@dataclass
class TableRun:
    """main.tf of a table, where each case's block sits, and what Terraform said."""

    text: str
    spans: dict[str, tuple[int, int]]
    validate: dict = field(default_factory=dict)
    plan: list[Diagnostic] = field(default_factory=list)
    plan_output: str = ""
    requests: dict = field(default_factory=dict)

    def diagnostics(self, case: Case) -> list[Diagnostic]:
        first, last = self.spans[case.id]
        found = [
            Diagnostic(d["severity"], d["summary"], d.get("detail", ""), _line(d))
            for d in self.validate.get("diagnostics", [])
        ]
        return [d for d in found if d.line is not None and first <= d.line <= last]

    def plan_diagnostics(self, case: Case) -> list[Diagnostic]:
        first, last = self.spans[case.id]
        return [d for d in self.plan if d.line is not None and first <= d.line <= last]

    def expected_line(self, case: Case) -> int:
        """The line of ``case.attribute`` in the case's block (the block's header when None)."""
        first, last = self.spans[case.id]
        lines = self.text.splitlines()
        header = re.compile(r'^(resource|data|provider) "')
        headers = [n for n in range(first, last + 1) if header.match(lines[n - 1])]
        if case.block is not None:
            headers = [n for n in headers if f'"{case.block}"' in lines[n - 1]]
        start = headers[0]
        if case.attribute is None:
            return start
        pattern = re.compile(rf'^\s*"?{re.escape(case.attribute)}"?\s*=')
        for number in range(start, last + 1):
            if pattern.match(lines[number - 1]):
                return number
            if number > start and lines[number - 1] == "}":
                break
        raise AssertionError(f"{case.id}: no line for {case.attribute!r} in its block")


def _line(diagnostic: dict) -> int | None:
    return diagnostic.get("range", {}).get("start", {}).get("line")


def table_text(cases: list[Case]) -> tuple[str, dict[str, tuple[int, int]]]:
    """One main.tf body holding every case's blocks, and each case's (first, last) line."""
    text = PROVIDER_BLOCK + 'provider "raydog" {}\n'
    spans = {}
    for case in cases:
        body = case.hcl.replace(LABEL, case.label)
        first = text.count("\n") + 2  # after the blank line below
        text += "\n" + body
        spans[case.id] = (first, text.count("\n"))
    return text, spans


PLAN_DIAGNOSTIC = re.compile(
    r"^(Error|Warning): (?P<summary>.*)\n\n(?:  with .*\n)?  on main\.tf line (?P<line>\d+)"
    r"(?:, in [^\n]*)?:\n(?:  *\d+:.*\n|  *[│├].*\n|.*\n)*?\n(?P<detail>(?:.+\n)*)",
    re.MULTILINE,
)


def parse_plan_output(output: str) -> list[Diagnostic]:
    return [
        Diagnostic(m.group(1).lower(), m.group("summary"), m.group("detail"), int(m.group("line")))
        for m in PLAN_DIAGNOSTIC.finditer(output)
    ]


class Workdir:
    """One initialised Terraform working directory whose main.tf each run rewrites."""

    def __init__(self, terraform: Terraform, sandbox) -> None:
        self.terraform = terraform
        self.sandbox = sandbox

    def run_table(self, cases: list[Case], *, validate: bool = True, plan: bool = True) -> TableRun:
        text, spans = table_text(cases)
        self.terraform.write(text, provider_block=False)
        run = TableRun(text, spans)
        self.sandbox.reset_requests()
        if validate:
            run.validate = self.terraform.run("validate", "-json", "-no-color", check=False).json()
        if plan:
            result = self.terraform.plan_exitcode()
            run.plan_output = result.output
            run.plan = parse_plan_output(result.output)
        run.requests = self.sandbox.requests()
        return run


@pytest.fixture(scope="module")
def module_sandbox():
    running = start_sandbox()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, terraform_env, module_sandbox) -> Workdir:
    env = {
        **terraform_env,
        "YD_API_URL": module_sandbox.url,
        "YD_API_KEY_ID": module_sandbox.key_id,
        "YD_API_KEY_SECRET": module_sandbox.key_secret,
    }
    terraform = Terraform(tmp_path_factory.mktemp("invalid"), env)
    terraform.write('provider "raydog" {}\n')
    terraform.init()
    return Workdir(terraform, module_sandbox)


@pytest.fixture(scope="module")
def invalid_run(workdir) -> TableRun:
    return workdir.run_table(CASES)


@pytest.fixture(scope="module")
def provider_run(workdir) -> TableRun:
    return workdir.run_table(PROVIDER_CASES, plan=False)


@pytest.fixture(scope="module")
def plan_time_run(workdir) -> TableRun:
    return workdir.run_table(PLAN_CASES, validate=False)


@pytest.fixture(scope="module")
def warning_run(workdir) -> TableRun:
    return workdir.run_table(WARNING_CASES, plan=False)


def check_case(run: TableRun, case: Case, diagnostics: list[Diagnostic], where: str) -> None:
    """The case produced exactly one diagnostic, of its severity, on its attribute's line."""
    expected = run.expected_line(case)
    problems = [d for d in diagnostics if d.severity == "error" or d.severity == case.severity]
    assert len(problems) == 1, f"{case.id} ({where}): expected one {case.severity}, got {problems}"
    (found,) = problems
    assert found.severity == case.severity, f"{case.id} ({where}): {found}"
    assert case.message in found.text, f"{case.id} ({where}): {case.message!r} not in {found.text!r}"
    assert found.line == expected, (
        f"{case.id} ({where}): points at line {found.line}, expected {expected} "
        f"({run.text.splitlines()[expected - 1].strip()!r})"
    )


# ---------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_config_fails_validate_on_the_attribute(invalid_run, case):
    check_case(invalid_run, case, invalid_run.diagnostics(case), "validate -json")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_config_fails_plan_on_the_attribute(invalid_run, case):
    check_case(invalid_run, case, invalid_run.plan_diagnostics(case), "plan")


def test_invalid_configs_make_no_request(invalid_run):
    assert invalid_run.validate["valid"] is False
    assert invalid_run.validate["error_count"] == len(CASES), json.dumps(invalid_run.validate)[:4000]
    assert "Error:" in invalid_run.plan_output
    assert invalid_run.requests["total"] == 0, invalid_run.requests


@pytest.mark.parametrize("case", PROVIDER_CASES, ids=lambda c: c.id)
def test_invalid_provider_config_fails_validate_on_the_attribute(provider_run, case):
    check_case(provider_run, case, provider_run.diagnostics(case), "validate -json")


def test_invalid_provider_configs_make_no_request(provider_run):
    assert provider_run.validate["error_count"] == len(PROVIDER_CASES), provider_run.validate
    assert provider_run.requests["total"] == 0, provider_run.requests


def test_plan_output_names_the_resource_and_line(invalid_run):
    case = next(c for c in CASES if c.id == "node-count-zero")
    line = invalid_run.expected_line(case)
    assert re.search(
        r"  with raydog_worker_pool\.node_count_zero,\n"
        rf'  on main\.tf line {line}, in resource "raydog_worker_pool" "node_count_zero":\n'
        rf" *{line}:   node_count = 0\n",
        invalid_run.plan_output,
    ), invalid_run.plan_output


@pytest.mark.parametrize("case", PLAN_CASES, ids=lambda c: c.id)
def test_value_known_at_plan_fails_plan_on_the_attribute(plan_time_run, case):
    check_case(plan_time_run, case, plan_time_run.plan_diagnostics(case), "plan")


def test_plan_time_failures_make_only_the_credential_check(plan_time_run):
    """Configure checks the key once; the failed plan makes no other request."""
    assert plan_time_run.requests["total"] == 1, plan_time_run.requests
    assert list(plan_time_run.requests["routes"]) == ["GET /work/requirements"], plan_time_run.requests


@pytest.mark.parametrize("case", WARNING_CASES, ids=lambda c: c.id)
def test_script_breaking_the_contract_is_a_warning_on_the_attribute(warning_run, case):
    check_case(warning_run, case, warning_run.diagnostics(case), "validate -json")


def test_contract_warnings_do_not_fail_validate(warning_run):
    assert warning_run.validate["valid"] is True, warning_run.validate
    assert warning_run.validate["error_count"] == 0
    assert warning_run.validate["warning_count"] >= len(WARNING_CASES)
    assert warning_run.requests["total"] == 0


def test_cases_alone_give_the_same_diagnostics(workdir, invalid_run):
    """Validated together or alone, a case gets the same diagnostics on the same attribute."""
    cases = [c for c in CASES if c.id in ("pool-derived-name-over-60", "environment-overrides-ray-head-ip")]
    for case in cases:
        alone = workdir.run_table([case], plan=False)
        check_case(alone, case, alone.diagnostics(case), "validate -json, alone")
        assert [d.text for d in alone.diagnostics(case)] == [d.text for d in invalid_run.diagnostics(case)]
        assert alone.requests["total"] == 0


# Settings that only configure sees (the environment, or what is missing): one error,
# naming the attribute and its environment variable, and no request.
CONFIGURE_CASES = [
    pytest.param({}, "Missing YellowDog application key",
                 ["application_key_id and application_key_secret", "YD_API_KEY_ID and YD_API_KEY_SECRET"],
                 id="no-key-at-all"),
    pytest.param({"YD_API_KEY_ID": "key"}, "Missing YellowDog application key",
                 ["Set application_key_secret", "the YD_API_KEY_SECRET environment variable"],
                 id="no-key-secret"),
    pytest.param({"YD_API_KEY_ID": "key", "YD_API_KEY_SECRET": "secret", "YD_API_URL": "127.0.0.1:8080"},
                 "Invalid api_url", ['"127.0.0.1:8080" is not an http(s) URL', "YD_API_URL"],
                 id="api-url-from-environment-without-scheme"),
]


@pytest.mark.parametrize("env, summary, phrases", CONFIGURE_CASES)
def test_bad_settings_fail_once_at_configure_without_a_request(
    terraform_factory, module_sandbox, env, summary, phrases
):
    terraform = terraform_factory(f"configure-{len(env)}", **{"YD_API_URL": module_sandbox.url, **env})
    terraform.write('provider "raydog" {}\n' + cluster().replace(LABEL, "a") + pool().replace(LABEL, "b")
                    + head().replace(LABEL, "c"))
    terraform.init()
    module_sandbox.reset_requests()
    result = terraform.plan_exitcode()
    assert result.returncode == 1, result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error:")] == [f"Error: {summary}"]
    assert 'on main.tf line 10, in provider "raydog":' in result.output  # the provider block
    flat = " ".join(result.output.split())
    for phrase in phrases:
        assert phrase in flat, result.output
    assert module_sandbox.requests()["total"] == 0
