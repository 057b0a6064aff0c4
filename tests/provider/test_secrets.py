"""Secrets stay secret: the application key secrets (the provider's and the head autoscaler's) and
userdata never reach a log or the output.

A small cluster whose provider block holds a distinctive secret and whose nodes have a
distinctive userdata goes through plan, apply, a no-change plan, a plan with a wrong
secret, an apply whose create fails, and destroy, with TF_LOG=trace written to a file.
Neither string may appear in that log (which holds Terraform's own trace and every line
the provider writes to stderr) or in anything Terraform prints; the plan shows the
userdata as (sensitive value).
"""

from __future__ import annotations

import secrets

import pytest

from harness.config import Expr, cluster_config, output, worker_pool
from harness.terraform import Result, Terraform

KEY_ID = "secrets-key"
SECRET = f"key-secret-{secrets.token_hex(8)}"
USERDATA_MARK = f"userdata-{secrets.token_hex(8)}"
WRONG_SECRET = f"wrong-secret-{secrets.token_hex(8)}"
AUTOSCALER_SECRET = f"autoscaler-secret-{secrets.token_hex(8)}"
USERDATA = f"#!/bin/bash\necho {USERDATA_MARK} > /tmp/boot-mark\n"


def config(sandbox_url: str, *, secret: str = SECRET, extra: str = "") -> str:
    """A head and a two-node pool whose provider block holds the key and whose nodes get USERDATA."""
    credentials = {"api_url": sandbox_url, "application_key_id": KEY_ID, "application_key_secret": secret}
    return (
        cluster_config("secrets", {"w": 2}, provider_attrs=credentials,
                       head_attrs={"userdata": USERDATA, "autoscaler_application_key_id": "autoscaler",
                                   "autoscaler_application_key_secret": AUTOSCALER_SECRET},
                       pool_attrs={"userdata": USERDATA})
        + extra
        + "\n"
        + output("head_ip", Expr("raydog_head.h.private_ip"), "The head's private IP (to show outputs are printed).")
    )


# A pool whose template YellowDog does not have: its plan fails and reports the cause.
FAILING_POOL = worker_pool("broken", 1, compute_requirement_template_id="sandbox/no-such-template",
                           userdata=USERDATA)


class TracedTerraform:
    """Runs Terraform with TF_LOG=trace into one file and keeps everything it printed."""

    def __init__(self, terraform: Terraform, log_path) -> None:
        self.terraform = terraform
        self.log_path = log_path
        self.results: list[Result] = []

    def run(self, *args: str, check: bool = True) -> Result:
        result = self.terraform.run(
            *args, check=check, extra_env={"TF_LOG": "trace", "TF_LOG_PATH": str(self.log_path)}
        )
        self.results.append(result)
        return result

    @property
    def printed(self) -> str:
        return "".join(r.output for r in self.results)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def assert_nothing_secret(text: str, where: str) -> None:
    for name, value in (("application_key_secret", SECRET), ("the wrong secret", WRONG_SECRET),
                        ("userdata", USERDATA_MARK), ("autoscaler_application_key_secret", AUTOSCALER_SECRET)):
        assert value not in text, f"{name} appears in {where}: " + context(text, value)


def context(text: str, value: str) -> str:
    at = text.index(value)
    return repr(text[max(0, at - 300) : at + 100])


@pytest.fixture(scope="module")
def story(terraform_env, tmp_path_factory):
    """Plan, apply, a no-change plan, a refused key, a failing create and destroy, all traced."""
    from raydog_sandbox.server import start_sandbox

    sandbox = start_sandbox(api_keys={KEY_ID: SECRET})
    workdir = tmp_path_factory.mktemp("secrets")
    terraform = Terraform(workdir / "tf", dict(terraform_env))
    terraform.write(config(sandbox.url))
    terraform.init()
    traced = TracedTerraform(terraform, workdir / "trace.log")
    try:
        traced.first_plan = traced.run("plan", "-input=false", "-no-color")
        traced.run("apply", "-auto-approve", "-input=false", "-no-color")
        traced.live_after_apply = sandbox.state()["live"]
        traced.second_plan = traced.run("plan", "-input=false", "-no-color", "-detailed-exitcode",
                                        check=False)

        terraform.write(config(sandbox.url, secret=WRONG_SECRET))
        traced.refused = traced.run("plan", "-input=false", "-no-color", check=False)

        terraform.write(config(sandbox.url, extra=FAILING_POOL))
        traced.failed = traced.run("apply", "-auto-approve", "-input=false", "-no-color", check=False)

        # Destroy plans the configuration first, and the unknown template fails that plan:
        # the user removes the broken pool, then destroys.
        terraform.write(config(sandbox.url))
        traced.run("destroy", "-auto-approve", "-input=false", "-no-color")
        traced.live_after_destroy = sandbox.state()["live"]
        yield traced
    finally:
        sandbox.stop()


def test_story_ran_every_step(story):
    assert story.live_after_apply["workerPools"] == 2
    assert story.second_plan.returncode == 0, story.second_plan.output
    assert "YellowDog refused the application key" in story.refused.output
    assert story.failed.returncode == 1, story.failed.output
    assert "with raydog_worker_pool.broken," in story.failed.output  # the error is the failing pool's
    assert not any(story.live_after_destroy.values())


def test_plan_shows_userdata_as_sensitive(story):
    assert "userdata                        = (sensitive value)" in story.first_plan.stdout


def test_plan_shows_the_autoscaler_secret_as_sensitive(story):
    assert "autoscaler_application_key_secret = (sensitive value)" in story.first_plan.stdout


def test_trace_log_holds_terraform_and_provider_lines(story):
    """The log is worth searching: Terraform's gRPC trace and the provider's stderr are in it."""
    log = story.log
    assert "GRPCProvider.v6: ConfigureProvider" in log
    assert "provider.terraform-provider-raydog" in log and "raydog.yellowdog: provisioned worker pool" in log


def test_secret_and_userdata_never_in_the_trace_log(story):
    assert_nothing_secret(story.log, "the TF_LOG=trace log")


def test_secret_and_userdata_never_printed(story):
    assert_nothing_secret(story.printed, "Terraform's output")
