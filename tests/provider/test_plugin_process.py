"""The provider process itself: it must never outlive the Terraform that started it."""

from __future__ import annotations

import os
import signal
import subprocess

import psutil
from harness.waits import wait_until


def launcher(mirror):
    return next(mirror.glob("registry.terraform.io/yellowdog/raydog/*/*/terraform-provider-raydog_v*"))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_provider_exits_when_terraform_is_killed_without_shutting_it_down(provider_mirror, terraform_env):
    # A stand-in for Terraform: a shell that starts the provider, as Terraform does, and is
    # then killed with SIGKILL, so no Shutdown call ever reaches the provider.
    parent = subprocess.Popen(
        ["sh", "-c", f'"{launcher(provider_mirror)}" & echo "pid=$!"; wait'],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=terraform_env, text=True, start_new_session=True)
    provider_pid, handshake = None, None
    try:
        while provider_pid is None or handshake is None:
            line = parent.stdout.readline()
            assert line, "the provider exited before its handshake"
            if line.startswith("pid="):
                provider_pid = int(line.removeprefix("pid="))
            elif "|" in line:
                handshake = line
        assert handshake.split("|")[:2] == ["1", "6"]  # go-plugin v1, tfplugin6
        assert not gone(provider_pid)

        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)

        # The provider must end on its own; 60 s is a liveness bound, not a timing target.
        wait_until(lambda: gone(provider_pid), "the provider exits after Terraform was killed", timeout=60)
    finally:
        if provider_pid is not None and not gone(provider_pid):
            os.kill(provider_pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
