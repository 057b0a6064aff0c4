"""The hostile-input catalogue: bad or hostile input fails before any API call, with a
clear message on the attribute's line, and leaks nothing.

Every case runs through real Terraform against the sandbox. The tables below are invalid
configurations: literals are known at `terraform validate`; values that come from another
resource are checked when `terraform plan` knows them; values known only once another
resource exists are checked in the plan Terraform makes at apply, before the resource's
own request. Each case is its own block (or blocks), independent of the others, so a
whole table is checked in ONE Terraform run (Terraform validates independent blocks
independently) and every case then checks its own diagnostics: exactly the expected
errors, each on the line of the expected attribute (or map key) inside the case's block.

For the report (``test_catalogue_report``), each case records where it was caught and how
many API requests the sandbox saw during its table's run: zero for every case caught at
validate or plan, beyond configure's one credential check (which a plan always makes, and
which is how a wrong key is found).

Also here: templates that try to escape Jinja's sandbox, credentials that an HTTP header
cannot carry and URL user-info, each run with TF_LOG=trace and every output searched for
the secret; and a message over gRPC's default 4 MB limit.

Not in the catalogue: two raydog_worker_pool resources with the same name and
cluster_name. Terraform validates and plans each resource on its own, and nothing in a
request tells one resource instance from another, so the provider cannot see the clash
at validate or plan time without asking the platform; the module refuses duplicate keys
of its pools map, and a check at create time belongs to the resources.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pytest
from catalogue_helpers import (
    LABEL,
    NAME_RULE,
    Case,
    Expr,
    Record,
    TableRun,
    Workdir,
    aliased_provider,
    check_case,
    cluster,
    head,
    observability,
    pool,
    script,
    summary,
)
from harness.terraform import Terraform
from raydog_sandbox.server import start_sandbox

# ---------------------------------------------------------------------------------------
# The catalogue


CASES = [
    # Names that break YellowDog's rule, as given and as derived (<cluster>-<pool>).
    Case("cluster-name-uppercase", cluster(name="Demo"), "name", NAME_RULE),
    Case("cluster-name-leading-digit", cluster(name="1demo"), "name", NAME_RULE),
    Case("cluster-name-trailing-dash", cluster(name="demo-"), "name", NAME_RULE),
    Case("cluster-name-dots", cluster(name="demo.prod"), "name", NAME_RULE),
    Case("cluster-name-empty", cluster(name=""), "name", "must not be empty"),
    Case("cluster-name-over-60", cluster(name="c" * 61), "name",
         "61 characters long; at most 55 are allowed (the head pool's YellowDog name"),
    Case("cluster-name-too-long-for-its-head", cluster(name="c" * 56), "name",
         "56 characters long; at most 55 are allowed (the head pool's YellowDog name <cluster_name>-head"),
    Case("cluster-namespace-spaces", cluster(namespace="team a"), "namespace", NAME_RULE),
    Case("cluster-tag-punctuation", cluster(tag="prod!"), "tag", NAME_RULE),
    Case("pool-name-uppercase", pool(name="GPU"), "name", NAME_RULE),
    Case("pool-name-dots", pool(name="gpu.large"), "name", NAME_RULE),
    Case("pool-name-empty", pool(name=""), "name", "must not be empty"),
    Case("pool-name-reserved-head", pool(name="head"), "name", "reserved"),
    Case("pool-name-reserved-obs", pool(name="obs"), "name", "reserved"),
    Case("pool-name-over-51", pool(name="p" * 52), "name", "52 characters long; at most 51"),
    Case("pool-derived-name-over-60", pool(cluster_name="c" * 30, name="p" * 30), "name",
         "61 characters long; at most 60 are allowed (YellowDog's limit); with cluster name "),
    Case("pool-cluster-name-invalid", pool(cluster_name="Demo"), "cluster_name", NAME_RULE),
    Case("head-derived-name-over-60", head(cluster_name="c" * 56), "cluster_name", "56 characters long; at most 55"),
    Case("observability-derived-name-over-60", observability(cluster_name="c" * 57), "cluster_name",
         "57 characters long; at most 55"),
    Case("head-name-suffix-too-long", head(cluster_name="c" * 40, name_suffix="s" * 20), "name_suffix",
         "name_suffix may be at most 14 characters"),
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
    # Autoscaling bounds: each error names its member (autoscaling.max_nodes), and node_count must
    # lie inside the bounds when given; without the block it is required.
    Case("autoscaling-max-below-min", pool(node_count=None, autoscaling={"min_nodes": 3, "max_nodes": 2}),
         "max_nodes", "must be at least autoscaling.min_nodes (3); got 2"),
    Case("autoscaling-min-negative", pool(node_count=None, autoscaling={"min_nodes": -1, "max_nodes": 2}),
         "min_nodes", "must be at least 0 (got -1)"),
    Case("autoscaling-max-zero", pool(node_count=None, autoscaling={"min_nodes": 0, "max_nodes": 0}),
         "max_nodes", "must be at least 1 (got 0)"),
    Case("autoscaling-max-over-10000", pool(node_count=None, autoscaling={"min_nodes": 0, "max_nodes": 10001}),
         "max_nodes", "at most 10000"),
    Case("autoscaling-min-fractional", pool(node_count=None, autoscaling={"min_nodes": 0.5, "max_nodes": 2}),
         "min_nodes", "whole number of nodes, not 0.5"),
    Case("autoscaling-max-1e400", pool(node_count=None, autoscaling={"min_nodes": 0, "max_nodes": Expr("1e400")}),
         "max_nodes", "at most 10000"),
    Case("autoscaling-idle-words", pool(node_count=None, autoscaling={"min_nodes": 0, "max_nodes": 2,
                                                                      "idle_timeout": "ten minutes"}),
         "idle_timeout", "not a duration"),
    Case("autoscaling-idle-too-short", pool(node_count=None, autoscaling={"min_nodes": 0, "max_nodes": 2,
                                                                          "idle_timeout": "1s"}),
         "idle_timeout", 'must be between "5s" and "168h"'),
    Case("autoscaling-node-count-outside-bounds", pool(node_count=5, autoscaling={"min_nodes": 1, "max_nodes": 3}),
         "node_count", "must lie between autoscaling.min_nodes (1) and autoscaling.max_nodes (3); got 5"),
    Case("node-count-missing-without-autoscaling", pool(node_count=None), None,
         "node_count is required unless the pool has an autoscaling block"),
    Case("head-autoscaler-secret-without-id", head(autoscaler_application_key_secret="s3cret-value"),
         "autoscaler_application_key_secret", "set autoscaler_application_key_id too"),
    Case("head-autoscaler-api-url-not-http", head(autoscaler_api_url="ftp://example.com"), "autoscaler_api_url",
         "is not an http(s) URL"),
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
    # Hostile input, known at validate.
    Case("cluster-name-trailing-newline", cluster(name="adv\n"), "name", NAME_RULE),
    Case("namespace-trailing-newline", cluster(namespace="adv\n"), "namespace", NAME_RULE),
    Case("pool-name-trailing-newline", pool(name="cpu\n"), "name", NAME_RULE),
    Case("node-count-1e400", pool(node_count=Expr("1e400")), "node_count", "at most 10000"),
    Case("node-count-beyond-int64", pool(node_count=Expr("123456789012345678901234567890")), "node_count",
         "at most 10000"),
    Case("lifetime-99999999999h", head(lifetime="99999999999h"), "lifetime", "too long"),
    Case("timeouts-create-400-digits", pool(timeouts={"create": "9" * 400 + "h"}), "create", "too long"),
    Case("head-private-ip-shell", pool(head_private_ip="not an ip; rm -rf /"), "head_private_ip",
         "is not an IP address"),
    Case("head-private-ip-host-and-port", pool(head_private_ip="10.0.0.1:6379"), "head_private_ip",
         "is not an IP address"),
    Case("observability-host-out-of-range", head(observability_host="10.0.0.300"), "observability_host",
         "is not an IP address"),
    Case("pool-observability-host-name", pool(observability_host="obs.internal"), "observability_host",
         "is not an IP address"),
    Case("instance-tag-key-with-equals", pool(instance_tags={"a=b": "x"}), "a=b", '"="'),
    Case("instance-tag-key-with-newline", head(instance_tags={"team\n": "x"}), "team\\n", "newlines"),
    Case("instance-tag-key-300-characters", pool(instance_tags={"k" * 300: "x"}), "k" * 300, "at most 128"),
    Case("instance-tag-key-aws-prefix", observability(instance_tags={"aws:cloudformation": "x"}),
         "aws:cloudformation", '"aws:"'),
    Case("instance-tag-key-yd-prefix", pool(instance_tags={"yd:owner": "x"}), "yd:owner", '"yd:"'),
    Case("instance-tag-value-300-characters", pool(instance_tags={"team": "v" * 300}), "instance_tags",
         "at most 256"),
    Case("instance-tag-value-with-newline", head(instance_tags={"team": "a\nb"}), "instance_tags", "newlines"),
    *(Case(f"environment-{key.lower().replace('_', '-')}", pool(environment={key: "x"}), key,
           "would change how the node")
      for key in ("PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "IFS", "SHELLOPTS", "PS4",
                  "YD_AGENT_HOME")),
    # Sizes above the task-data limits (1 MiB script, 16 KiB userdata, 128 KiB environment).
    Case("task-script-over-1-mib", pool(task_script=Expr(f'join("", [for i in range(1000) : "{"#" * 1100}"])')),
         "task_script", "at most 1048576"),
    Case("userdata-over-16-kib", head(userdata=Expr(f'join("", [for i in range(1000) : "{"x" * 17}"])')),
         "userdata", "at most 16384"),
    Case("environment-over-128-kib",
         observability(environment=Expr(f'{{ BIG = join("", [for i in range(1000) : "{"x" * 140}"]) }}')),
         "environment", "at most 131072"),
    # Templates that try to leave Jinja's sandbox: Python internals, globals, the environment.
    Case("template-walks-mro-subclasses", script(source="{{ ''.__class__.__mro__[1].__subclasses__() }}"),
         "source", "unsafe"),
    Case("template-cycler-globals-environ", script(source="{{ cycler.__init__.__globals__.os.environ }}"),
         "source", "unsafe"),
    Case("template-lipsum-globals-popen",
         script(source="{{ lipsum.__globals__['os'].popen('touch HOSTILE_MARKER').read() }}"), "source", "unsafe"),
    Case("template-self-reads-secret",
         script(source="{{ self.__init__.__globals__['os'].environ['YD_API_KEY_SECRET'] }}"), "source", "unsafe"),
    Case("template-joiner-globals-system",
         script(source="{{ joiner.__init__.__globals__.os.system('touch HOSTILE_MARKER') }}"), "source", "unsafe"),
    Case("template-attr-filter-class", script(source="{{ ('a'|attr('__class__')).__base__ }}"), "source",
         "unsafe"),
    Case("template-string-bomb", script(source="{{ 'x' * 10**10 }}"), "source", "too large"),
    Case("template-list-append", script(source="{% set l = [] %}{{ l.append(1) }}"), "source", "unsafe"),
    # Readiness at the Ray level and drain before shrink.
    Case("pool-readiness-unknown-word", pool(readiness="joined"), "readiness",
         '"joined" is not a readiness; use "executing" or "ray"'),
    Case("head-readiness-uppercase", head(readiness="RAY"), "readiness", '"RAY" is not a readiness'),
    Case("pool-readiness-ray-without-waiting", pool(readiness="ray", wait_for_nodes=False), "readiness",
         "wait_for_nodes = false says not to wait"),
    Case("pool-drain-timeout-words", pool(drain_timeout="5 minutes"), "drain_timeout",
         '"5 minutes" is not a duration'),
    Case("pool-drain-timeout-negative", pool(drain_timeout="-1m"), "drain_timeout", '"-1m" is not a duration'),
    Case("pool-drain-timeout-400-digits", pool(drain_timeout="9" * 400 + "h"), "drain_timeout", "too long"),
    Case("pool-gcs-address-url", pool(ray_gcs_address="http://10.0.0.1:6379"), "ray_gcs_address", "not a URL"),
    Case("pool-gcs-address-no-port", pool(ray_gcs_address="10.0.0.1"), "ray_gcs_address",
         "needs a host and a port from 1 to 65535"),
    Case("pool-gcs-address-port-too-big", pool(ray_gcs_address="10.0.0.1:70000"), "ray_gcs_address",
         "needs a host and a port from 1 to 65535"),
    Case("pool-gcs-address-bare-ipv6", pool(ray_gcs_address="fd00::1:6379"), "ray_gcs_address",
         "write an IPv6 address in brackets"),
    Case("pool-gcs-address-newline-injection", pool(ray_gcs_address="10.0.0.1:6379\nX-Evil: 1"), "ray_gcs_address",
         "without spaces or control characters"),
    Case("pool-gcs-address-user-info", pool(ray_gcs_address="user:pw@10.0.0.1:6379"), "ray_gcs_address",
         "not a URL"),
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
    Case("provider-key-secret-trailing-newline", aliased_provider(application_key_secret="s3cret\n"),
         "application_key_secret", "start or end"),
    Case("provider-key-secret-inner-space", aliased_provider(application_key_secret="s3 cret"),
         "application_key_secret", "must not contain spaces"),
    Case("provider-key-secret-not-latin-1", aliased_provider(application_key_secret="s3cret\u2603"),
         "application_key_secret", "outside Latin-1"),
    Case("provider-key-secret-control-character", aliased_provider(application_key_secret="s3\u0007cret"),
         "application_key_secret", "control characters"),
    Case("provider-key-id-with-colon", aliased_provider(application_key_id="id:extra"), "application_key_id",
         'must not contain ":"'),
    Case("provider-api-url-user-info", aliased_provider(api_url="https://user:pw@api.yellowdog.ai"), "api_url",
         "user-info"),
    Case("provider-api-url-newline", aliased_provider(api_url="https://api.yellowdog.ai\n"), "api_url",
         "newlines"),
    Case("provider-api-url-bad-port", aliased_provider(api_url="https://api.yellowdog.ai:99999"), "api_url",
         "invalid port"),
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
    Case("plan-head-private-ip-from-a-name",
         cluster(name="ipname") + pool(cluster_id=Expr(f"raydog_cluster.{LABEL}.id"), cluster_name="ipname",
                                       head_private_ip=Expr(f"raydog_cluster.{LABEL}.name")),
         "head_private_ip", '"ipname" is not an IP address', block="raydog_worker_pool"),
    Case("plan-cluster-name-with-newline-from-a-resource",
         cluster(name="nl", namespace="nl") + head(cluster_id=Expr(f"raydog_cluster.{LABEL}.id"),
                                                   cluster_name=Expr(f'"${{raydog_cluster.{LABEL}.namespace}}\\n"')),
         "cluster_name", NAME_RULE, block="raydog_head"),
]

# Values known only once another resource exists: Terraform plans the resource again at
# apply, with them known, and that plan fails before the resource's own request (the
# cluster the case depends on is created; nothing of the failing resource is).
APPLY_CASES = [
    Case("apply-lifetime-from-cluster-status",
         cluster(name="late") + pool(cluster_id=Expr(f"raydog_cluster.{LABEL}.id"), cluster_name="late",
                                     lifetime=Expr(f'"${{raydog_cluster.{LABEL}.status}}h"')),
         "lifetime", '"RUNNINGh" is not a duration', block="raydog_worker_pool"),
    Case("apply-head-private-ip-from-cluster-id",
         cluster(name="later") + pool(cluster_id=Expr(f"raydog_cluster.{LABEL}.id"), cluster_name="later",
                                      head_private_ip=Expr(f"raydog_cluster.{LABEL}.id")),
         "head_private_ip", "is not an IP address", block="raydog_worker_pool"),
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


@pytest.fixture(scope="module")
def apply_time_run(tmp_path_factory, terraform_env, module_sandbox) -> TableRun:
    """The apply-time table, applied (and destroyed) in a working directory of its own."""
    env = {**terraform_env, "YD_API_URL": module_sandbox.url, "YD_API_KEY_ID": module_sandbox.key_id,
           "YD_API_KEY_SECRET": module_sandbox.key_secret}
    terraform = Terraform(tmp_path_factory.mktemp("apply-time"), env)
    terraform.write('provider "raydog" {}\n')
    terraform.init()
    return Workdir(terraform, module_sandbox).run_table(APPLY_CASES, validate=False, apply=True)


# ---------------------------------------------------------------------------------------
# Tests


ALL_CASES = CASES + PROVIDER_CASES + PLAN_CASES + APPLY_CASES + WARNING_CASES


def test_catalogue_is_large_enough():
    assert len([c for c in ALL_CASES if c.severity == "error"]) >= 32
    assert len({c.id for c in ALL_CASES}) == len(ALL_CASES)


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


def test_plan_time_failures_make_only_the_credential_check_and_template_reads(plan_time_run):
    """Configure checks the key once; the plan of the valid resources reads their template
    (once per distinct template) and changes nothing."""
    routes = dict(plan_time_run.requests["routes"])
    assert routes.pop("GET /work/requirements") == 1, plan_time_run.requests
    assert all(route.startswith("GET /compute/") and "templates" in route and count == 1
               for route, count in routes.items()), plan_time_run.requests


@pytest.mark.parametrize("case", APPLY_CASES, ids=lambda c: c.id)
def test_value_known_only_at_apply_fails_before_the_resource_request(apply_time_run, case):
    check_case(apply_time_run, case, apply_time_run.apply_diagnostics(case), "apply")


def test_apply_time_failures_create_nothing_of_the_failing_resource(apply_time_run, module_sandbox):
    """The clusters the cases depend on were created; no pool, compute requirement or task was."""
    changes = {route for route in apply_time_run.requests["routes"] if not route.startswith("GET ")}
    assert changes == {"POST /work/requirements"}, apply_time_run.requests
    assert not any(module_sandbox.state()["live"].values())  # and destroy removed the clusters


def test_templates_cannot_reach_python_or_the_environment(invalid_run, workdir):
    """No attack template ran a command, and none printed the key secret the provider's environment holds."""
    assert not (workdir.terraform.workdir / "HOSTILE_MARKER").exists()
    everything = json.dumps(invalid_run.validate) + invalid_run.plan_output
    assert workdir.sandbox.key_secret not in everything


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
CONFIGURE_CASES = {
    "no-key-at-all": ({}, "Missing YellowDog application key",
                      ["application_key_id and application_key_secret", "YD_API_KEY_ID and YD_API_KEY_SECRET"]),
    "no-key-secret": ({"YD_API_KEY_ID": "key"}, "Missing YellowDog application key",
                      ["Set application_key_secret", "the YD_API_KEY_SECRET environment variable"]),
    "api-url-from-environment-without-scheme": (
        {"YD_API_KEY_ID": "key", "YD_API_KEY_SECRET": "secret", "YD_API_URL": "127.0.0.1:8080"},
        "Invalid api_url", ['"127.0.0.1:8080" is not an http(s) URL', "YD_API_URL"]),
    "key-id-from-environment-with-colon": (
        {"YD_API_KEY_ID": "key:x", "YD_API_KEY_SECRET": "secret"}, "Invalid application_key_id",
        ['must not contain ":"', "YD_API_KEY_ID"]),
}


@pytest.fixture(scope="module")
def configure_runs(tmp_path_factory, terraform_env, module_sandbox) -> dict:
    """Each CONFIGURE_CASES environment, planned in one initialised directory: id -> (result, requests)."""
    terraform = Terraform(tmp_path_factory.mktemp("configure"), dict(terraform_env))
    terraform.write('provider "raydog" {}\n' + cluster().replace(LABEL, "a") + pool().replace(LABEL, "b")
                    + head().replace(LABEL, "c"))
    terraform.init()
    runs = {}
    for case_id, (env, _, _) in CONFIGURE_CASES.items():
        module_sandbox.reset_requests()
        result = terraform.run("plan", "-input=false", "-no-color", check=False,
                               extra_env={"YD_API_URL": module_sandbox.url, **env})
        runs[case_id] = (result, module_sandbox.requests())
    return runs


@pytest.mark.parametrize("case_id", CONFIGURE_CASES)
def test_bad_settings_fail_once_at_configure_without_a_request(configure_runs, case_id):
    result, requests = configure_runs[case_id]
    _, summary_line, phrases = CONFIGURE_CASES[case_id]
    assert result.returncode == 1, result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error:")] == [f"Error: {summary_line}"]
    assert 'on main.tf line 10, in provider "raydog":' in result.output  # the provider block
    flat = " ".join(result.output.split())
    for phrase in phrases:
        assert phrase in flat, result.output
    assert requests["total"] == 0


# ---------------------------------------------------------------------------------------
# Secrets: every failing credential, traced, and every output searched for the secret.

SECRET = f"S3cr3t-{secrets.token_hex(8)}"

# id -> (provider block body, files to write, environment, the error's summary, a phrase of it).
# A secret in the provider block comes from a file, as users keep one (a literal would be
# quoted back by Terraform itself, in the source line it shows with any error).
SECRET_CASES = {
    "secret-file-with-trailing-newline": (
        'application_key_secret = sensitive(file("secret.txt"))', {"secret.txt": SECRET + "\n"}, {},
        "Invalid provider application_key_secret", "trimspace(file(...))"),
    "secret-env-with-trailing-newline": ("", {}, {"YD_API_KEY_SECRET": SECRET + "\n"},
                                         "Invalid application_key_secret", "YD_API_KEY_SECRET"),
    "secret-env-with-inner-newline": ("", {}, {"YD_API_KEY_SECRET": SECRET + "\nmore"},
                                      "Invalid application_key_secret", "must not contain spaces, tabs or newlines"),
    "secret-env-with-space": ("", {}, {"YD_API_KEY_SECRET": SECRET + " x"}, "Invalid application_key_secret",
                              "must not contain spaces"),
    "secret-env-not-latin-1": ("", {}, {"YD_API_KEY_SECRET": SECRET + "\u2603"}, "Invalid application_key_secret",
                               "outside Latin-1"),
    "secret-env-control-character": ("", {}, {"YD_API_KEY_SECRET": SECRET + "\u0007"},
                                     "Invalid application_key_secret", "control characters"),
    "secret-wrong": ("", {}, {"YD_API_KEY_SECRET": SECRET}, "YellowDog refused the application key",
                     "application_key_secret"),
    "secret-in-env-url-user-info": ("", {}, {"YD_API_URL": "USER_INFO_URL"}, "Invalid api_url", "user-info"),
    "secret-in-file-url-user-info": ('api_url = file("url.txt")', {"url.txt": "USER_INFO_URL"}, {},
                                     "Invalid provider api_url", "user-info"),
}


@pytest.fixture(scope="module")
def secret_runs(tmp_path_factory, terraform_env, module_sandbox) -> dict:
    """Each SECRET_CASES plan with TF_LOG=trace: id -> (result, the trace log, requests)."""
    workdir = tmp_path_factory.mktemp("secrets")
    terraform = Terraform(workdir / "tf", dict(terraform_env))
    terraform.write('provider "raydog" {}\n')
    terraform.init()
    user_info_url = module_sandbox.url.replace("://", f"://ray:{SECRET}@")
    runs = {}
    for case_id, (body, files, env, _, _) in SECRET_CASES.items():
        for name, text in files.items():
            (terraform.workdir / name).write_text(text.replace("USER_INFO_URL", user_info_url))
        terraform.write(f'provider "raydog" {{\n  {body}\n}}\n' + cluster().replace(LABEL, "c"))
        log = workdir / f"{case_id}.log"
        environment = {"YD_API_URL": module_sandbox.url, "YD_API_KEY_ID": module_sandbox.key_id,
                       "YD_API_KEY_SECRET": module_sandbox.key_secret, "TF_LOG": "trace", "TF_LOG_PATH": str(log),
                       **{k: v.replace("USER_INFO_URL", user_info_url) for k, v in env.items()}}
        module_sandbox.reset_requests()
        result = terraform.run("plan", "-input=false", "-no-color", check=False, extra_env=environment)
        runs[case_id] = (result, log.read_text(errors="replace"), module_sandbox.requests())
    return runs


@pytest.mark.parametrize("case_id", SECRET_CASES)
def test_bad_credentials_fail_on_the_attribute_and_never_show_the_secret(secret_runs, case_id):
    result, log, requests = secret_runs[case_id]
    *_, summary_line, phrase = SECRET_CASES[case_id]
    assert result.returncode == 1, result.output
    assert f"Error: {summary_line}" in result.output, result.output
    assert phrase in " ".join(result.output.split()), result.output
    assert "ConfigureProvider" in log or "ValidateProviderConfig" in log  # the trace is worth searching
    for where, text in (("the output", result.output), ("the TF_LOG=trace log", log)):
        assert SECRET not in text, f"{case_id}: the secret appears in {where}"
    assert requests["total"] == (1 if case_id == "secret-wrong" else 0), requests


# ---------------------------------------------------------------------------------------
# Messages over gRPC's default 4 MB: Terraform's own providers take 256 MB.


def test_a_message_over_four_megabytes_reaches_the_provider(tmp_path, terraform_env, module_sandbox):
    """A 5 MB template: Terraform's requests to read it carry it whole (gRPC's server takes 4 MB by default)."""
    terraform = Terraform(tmp_path / "large", {
        **terraform_env, "YD_API_URL": module_sandbox.url, "YD_API_KEY_ID": module_sandbox.key_id,
        "YD_API_KEY_SECRET": module_sandbox.key_secret})
    line = "# " + "x" * 4998
    terraform.write(f"""
data "raydog_node_script" "big" {{
  source = join("\\n", [for i in range(1000) : "{line}"])
}}

output "size" {{
  description = "The rendered script's size."
  value       = length(data.raydog_node_script.big.content)
}}
""")
    terraform.init()
    result = terraform.run("plan", "-input=false", "-no-color", check=False)
    assert result.returncode == 0, result.output[-3000:]
    assert "ResourceExhausted" not in result.output
    assert "size = 5000999" in result.output, result.output[-2000:]


# ---------------------------------------------------------------------------------------
# The report


def test_catalogue_report(invalid_run, provider_run, plan_time_run, apply_time_run, configure_runs, secret_runs):
    """Where each case was caught and the requests its run made; every case caught before
    apply made no request beyond configure's credential check (and none at all, bar a wrong key)."""
    records = []
    for run, cases, expected in ((invalid_run, CASES, "validate"), (provider_run, PROVIDER_CASES, "validate"),
                                 (plan_time_run, PLAN_CASES, "plan"), (apply_time_run, APPLY_CASES, "apply")):
        for case in cases:
            caught, _ = run.caught(case)
            assert caught == expected, f"{case.id}: caught at {caught}, expected {expected}"
            records.append(Record.of(case.id, caught, run.requests))
    for case_id, (_, requests) in configure_runs.items():
        records.append(Record.of(case_id, "plan", requests))
    for case_id, (result, _, requests) in secret_runs.items():
        caught = "validate" if "Error: Invalid provider" in result.output else "plan"
        records.append(Record.of(case_id, caught, requests))

    figures = summary(records)
    lines = [f"{r.case:55} {r.caught:9} {r.requests:3} requests" for r in records]
    report = "\n".join([*lines, json.dumps(figures)])
    print(report)
    out = Path(__file__).resolve().parents[2] / "build"
    out.mkdir(exist_ok=True)
    (out / "hostile-input-catalogue.json").write_text(
        json.dumps({"summary": figures, "cases": [r.__dict__ for r in records]}, indent=1))

    before_apply = [r for r in records if r.caught in ("validate", "plan")]
    assert all(r.beyond_credential_check == 0 and r.changing == 0 for r in before_apply), report
    assert all(r.requests == 0 for r in before_apply if r.case not in ("secret-wrong",)
               and not r.case.startswith("plan-")), report
    assert figures["cases"] >= 100, report
