"""Credentials and the API URL: checked once, when the provider is configured.

A wrong key or an unreachable URL is one error at configure time that names the attribute
and its environment variable, however many resources the configuration has, and a value
in the provider block wins over the environment variable.
"""

from __future__ import annotations

import json
import socket

import pytest

from harness.config import cluster, cluster_config, provider
from harness.terraform import Terraform

CLUSTER = "creds"


def several_resources(**provider_attrs: str) -> str:
    """A provider block, a cluster, its head and three worker pools."""
    return cluster_config(CLUSTER, {"alpha": 1, "beta": 1, "gamma": 1}, provider_attrs=provider_attrs)


def one_cluster(**provider_attrs: str) -> str:
    return provider(**provider_attrs) + "\n" + cluster(CLUSTER)


def resources_in_state(terraform: Terraform) -> set[str]:
    """Addresses in terraform.tfstate (read directly: `terraform show` would start the provider)."""
    state = json.loads((terraform.workdir / "terraform.tfstate").read_text())
    return {f"{r['type']}.{r['name']}" for r in state["resources"] if r["mode"] == "managed"}


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def flat(text: str) -> str:
    return " ".join(text.split())


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def test_wrong_key_is_one_error_at_configure_not_one_per_resource(terraform_factory, sandbox):
    terraform = terraform_factory("wrong-key", sandbox=sandbox, YD_API_KEY_SECRET="not-the-secret")
    terraform.write(several_resources())
    terraform.init()
    sandbox.reset_requests()

    result = terraform.apply(check=False)

    assert result.returncode == 1, result.output
    assert errors(result.output) == ["Error: YellowDog refused the application key"], result.output
    text = flat(result.output)
    for name in ("application_key_id", "application_key_secret", "YD_API_KEY_ID", "YD_API_KEY_SECRET"):
        assert name in text, result.output
    assert "HTTP 401" in text
    counted = sandbox.requests()
    assert (counted["total"], counted["routes"]) == (1, {"GET /work/requirements": 1}), counted
    assert sandbox.state().get("workRequirements", []) == []


def test_wrong_key_with_resources_in_state_is_still_one_error(terraform_factory, sandbox):
    """Refreshing six resources does not turn one bad key into six errors, nor drop any of them."""
    terraform = terraform_factory("wrong-key-later", sandbox=sandbox)
    terraform.write(several_resources())
    terraform.init()
    terraform.apply()
    in_state = resources_in_state(terraform)
    sandbox.reset_requests()

    result = terraform.run("plan", "-input=false", "-no-color", check=False,
                           extra_env={"YD_API_KEY_ID": "someone-else"})

    assert result.returncode == 1, result.output
    assert errors(result.output) == ["Error: YellowDog refused the application key"], result.output
    assert sandbox.requests()["total"] == 1
    assert resources_in_state(terraform) == in_state == {
        "raydog_cluster.c", "raydog_head.h", "raydog_worker_pool.alpha", "raydog_worker_pool.beta",
        "raydog_worker_pool.gamma",
    }


def test_unreachable_api_url_is_one_error_naming_api_url(terraform_factory, sandbox):
    url = closed_port_url()
    terraform = terraform_factory("unreachable", sandbox=sandbox)
    terraform.write(several_resources(api_url=url))
    terraform.init()

    result = terraform.plan_exitcode()

    assert result.returncode == 1, result.output
    assert errors(result.output) == [f"Error: Cannot reach the YellowDog API at {url}"], result.output
    text = flat(result.output)
    assert "Check api_url (or YD_API_URL)" in text and "Connection refused" in text, result.output
    assert f'api_url = "{url}"' in result.output  # the diagnostic points at the attribute


@pytest.mark.sandbox(api_keys={"ci-key": "ci-secret"})
def test_provider_block_overrides_the_environment(terraform_factory, sandbox):
    """Wrong URL and key in YD_*, the right ones in the provider block: the block wins."""
    terraform = terraform_factory(
        "override", YD_API_URL=closed_port_url(), YD_API_KEY_ID="env-key", YD_API_KEY_SECRET="env-secret"
    )
    terraform.write(one_cluster(api_url=sandbox.url, application_key_id="ci-key", application_key_secret="ci-secret"))
    terraform.init()
    terraform.apply()
    assert [wr["name"] for wr in sandbox.state()["workRequirements"]] == [CLUSTER]

    # And the other way round: a wrong secret in the block beats the right one in YD_*.
    terraform.write(one_cluster(application_key_secret="block-secret"))
    right_env = {"YD_API_URL": sandbox.url, "YD_API_KEY_ID": "ci-key", "YD_API_KEY_SECRET": "ci-secret"}
    result = terraform.run("plan", "-input=false", "-no-color", check=False, extra_env=right_env)
    assert errors(result.output) == ["Error: YellowDog refused the application key"], result.output
