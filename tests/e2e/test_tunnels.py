"""SSH tunnels to the head, through a real OpenSSH server on a loopback port.

The sshd plays the head node; small HTTP servers on other loopback ports play the Ray
client, dashboard, Grafana and Prometheus "on the remote side": each tunnel forwards a local
port to 127.0.0.1:<their port> as the sshd host sees it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from raydog.tunnels import RayTunnels, SSHTunnelSpec, TunnelError
from sshd_helpers import ensure_sshd, free_port, http_server, keygen, port_is_open, start_sshd


@pytest.fixture(scope="session")
def sshd_binary() -> str:
    path, why = ensure_sshd()
    if path is None:
        pytest.skip(f"no OpenSSH server for the tunnel tests: {why}")
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    return {
        "good": keygen(directory / "good"),
        "wrong": keygen(directory / "wrong"),
        "encrypted": keygen(directory / "encrypted", passphrase="s3cret phrase"),
    }


@pytest.fixture(scope="module")
def sshd(sshd_binary, keys, tmp_path_factory):
    server = start_sshd(sshd_binary, tmp_path_factory.mktemp("sshd"), [keys["good"], keys["encrypted"]])
    yield server
    server.stop()


@pytest.fixture
def known_hosts(tmp_path):
    return str(tmp_path / "known_hosts")  # empty: the test host is new, as a fresh head is


@pytest.fixture
def remote_services():
    """Two HTTP servers on the sshd's side: (port, greeting) pairs."""
    with http_server("ray-dashboard") as dashboard, http_server("grafana") as grafana:
        yield [(dashboard, "ray-dashboard"), (grafana, "grafana")]


def tunnels_to(sshd, known_hosts, ports, **kwargs) -> RayTunnels:
    specs = [SSHTunnelSpec("127.0.0.1", 0, "127.0.0.1", port) for port in ports]
    kwargs.setdefault("private_key_file", str(sshd.key_file))
    return RayTunnels(sshd.host, sshd.user, ray_tunnel_specs=specs, ssh_port=sshd.port,
                      known_hosts_file=known_hosts, **kwargs)


def get(port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def test_default_tunnels_are_the_ray_client_and_dashboard():
    tunnels = RayTunnels("203.0.113.7", "yd-agent", private_key_file="private-key")
    assert [(s.local_bind_hostname, s.local_port, s.remote_bind_hostname, s.remote_port)
            for s in tunnels.tunnel_specs] == [("localhost", 10001, "localhost", 10001),
                                               ("localhost", 8265, "localhost", 8265)]
    assert RayTunnels.basic_port_forward(3000) == SSHTunnelSpec("localhost", 3000, "localhost", 3000)


def test_traffic_through_each_tunnel_reaches_its_remote_server(sshd, known_hosts, remote_services):
    tunnels = tunnels_to(sshd, known_hosts, [port for port, _ in remote_services])
    tunnels.start_tunnels()
    try:
        assert tunnels.is_active
        for (spec, local), (remote_port, greeting) in zip(tunnels.local_addresses, remote_services):
            local_port = int(local.rsplit(":", 1)[1])
            assert spec.remote_port == remote_port and local_port != remote_port
            assert tunnels.local_port(remote_port) == local_port
            # Several requests, each a new connection through the same SSH session.
            for n in range(3):
                assert get(local_port, f"/{n}") == f"{greeting} /{n}"
    finally:
        tunnels.stop_tunnels()
    assert "Accepted publickey" in sshd.log()


def test_stop_closes_every_local_port_and_connection(sshd, known_hosts, remote_services):
    with tunnels_to(sshd, known_hosts, [port for port, _ in remote_services]) as tunnels:
        local_ports = [int(local.rsplit(":", 1)[1]) for _, local in tunnels.local_addresses]
        assert all(port_is_open(port) for port in local_ports)
        held = socket.create_connection(("127.0.0.1", local_ports[0]), timeout=5)  # an open client connection
        held.sendall(b"GET /held HTTP/1.0\r\n\r\n")
        assert b"ray-dashboard /held" in held.recv(4096) + held.recv(4096)
    assert not tunnels.is_active and tunnels.local_addresses == []
    assert not any(port_is_open(port) for port in local_ports)
    held.settimeout(5)
    assert held.recv(4096) == b""  # closed by stop, not left hanging
    held.close()


def test_wrong_key_fails_with_a_clear_message(sshd, keys, known_hosts):
    local = free_port()
    tunnels = RayTunnels(sshd.host, sshd.user, private_key_file=str(keys["wrong"]), ssh_port=sshd.port,
                         ray_tunnel_specs=[SSHTunnelSpec("127.0.0.1", local, "127.0.0.1", 8265)],
                         known_hosts_file=known_hosts)
    with pytest.raises(TunnelError) as failure:
        tunnels.start_tunnels()
    message = str(failure.value)
    assert f"SSH authentication failed for {sshd.user}@127.0.0.1:{sshd.port}" in message
    assert f"did not accept the private key {keys['wrong']}" in message
    assert not port_is_open(local) and not tunnels.is_active


def test_encrypted_key_needs_its_password(sshd, keys, known_hosts, remote_services):
    port, greeting = remote_services[0]
    without = tunnels_to(sshd, known_hosts, [port], private_key_file=str(keys["encrypted"]))
    with pytest.raises(TunnelError, match="is encrypted; give its password"):
        without.start_tunnels()
    wrong = tunnels_to(sshd, known_hosts, [port], private_key_file=str(keys["encrypted"]),
                       private_key_password="not it")
    with pytest.raises(TunnelError, match="cannot decrypt the private key .* is the password right"):
        wrong.start_tunnels()
    with tunnels_to(sshd, known_hosts, [port], private_key_file=str(keys["encrypted"]),
                    private_key_password="s3cret phrase") as tunnels:
        assert get(tunnels.local_port(port)) == f"{greeting} /"


def test_changed_host_key_is_refused(sshd, keys, tmp_path):
    # known_hosts records another key for this host: a man in the middle, or a replaced head.
    keygen(tmp_path / "impostor")
    key_type, key_data = (tmp_path / "impostor.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key_data}\n")
    tunnels = tunnels_to(sshd, str(known), [8265])
    with pytest.raises(TunnelError, match="does not match the one in"):
        tunnels.start_tunnels()


def test_busy_local_port_fails_and_leaves_nothing_open(sshd, known_hosts, remote_services):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        first = free_port()
        specs = [SSHTunnelSpec("127.0.0.1", first, "127.0.0.1", remote_services[0][0]),
                 SSHTunnelSpec("127.0.0.1", taken, "127.0.0.1", remote_services[1][0])]
        tunnels = RayTunnels(sshd.host, sshd.user, private_key_file=str(sshd.key_file), ssh_port=sshd.port,
                             ray_tunnel_specs=specs, known_hosts_file=known_hosts)
        with pytest.raises(TunnelError, match=f"cannot listen on 127.0.0.1:{taken}"):
            tunnels.start_tunnels()
    assert not port_is_open(first) and not tunnels.is_active


# -- the `raydog tunnel` command ------------------------------------------------------------------


def start_command(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "raydog.cli", "tunnel", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def read_until_ready(process: subprocess.Popen, timeout: float = 30) -> list[str]:
    """The command's lines up to "Press Ctrl-C"; fails with its stderr if it exits first."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=10)
            pytest.fail(f"raydog tunnel exited {process.returncode}: {process.stderr.read()}")
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return lines
    process.kill()
    pytest.fail(f"raydog tunnel did not get ready: {lines}")


def local_port_of(lines: list[str], label: str) -> int:
    line = next(line for line in lines if line.strip().startswith(label))
    return int(line.split()[len(label.split())].rsplit(":", 1)[1].strip("/"))


def test_raydog_tunnel_forwards_until_ctrl_c(sshd, known_hosts, remote_services):
    (dashboard, greeting), _ = remote_services
    process = start_command("--head", sshd.host, "--ssh-port", str(sshd.port), "--user", sshd.user,
                            "--key", str(sshd.key_file), "--known-hosts", known_hosts, "--no-default-tunnels",
                            "--forward", f"0:127.0.0.1:{dashboard}")
    try:
        lines = read_until_ready(process)
        assert lines[0] == f"Tunnels through {sshd.user}@{sshd.host}:{sshd.port}:"
        local = local_port_of(lines, "forward")
        assert get(local, "/api/version") == f"{greeting} /api/version"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert out.strip().endswith("Tunnels closed.")
    assert "Traceback" not in err
    assert not port_is_open(local)


def test_raydog_tunnel_takes_the_head_from_terraform_outputs(sshd, known_hosts, remote_services,
                                                             terraform_factory):
    # A root module that outputs what the raydog module does, pointing at this sshd.
    tf = terraform_factory("outputs")
    tf.write(f"""
        output "head_public_ip" {{
          value = "{sshd.host}"
        }}
        output "observability_private_ip" {{
          value = "127.0.0.2"
        }}
        """, provider_block=False)
    tf.init()
    tf.apply()
    (dashboard, greeting), _ = remote_services
    process = subprocess.Popen(
        [sys.executable, "-m", "raydog.cli", "tunnel", "--terraform-dir", str(tf.workdir), "--ssh-port",
         str(sshd.port), "--user", sshd.user, "--key", str(sshd.key_file), "--known-hosts", known_hosts,
         "--any-local-port", "--forward", f"0:127.0.0.1:{dashboard}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tf.env)
    try:
        lines = read_until_ready(process)
        labels = [line.split("  ")[1].strip() for line in lines[1:-1]]
        assert labels == ["ray client", "dashboard", "grafana", "prometheus", "forward"]
        assert any(line.strip().startswith("ray client") and "ray://localhost:" in line for line in lines)
        assert any(line.strip().startswith("grafana") and line.endswith("-> 127.0.0.2:3000 via the head") for line in lines)
        local_ports = [local_port_of(lines, label) for label in labels]
        assert get(local_port_of(lines, "forward")) == f"{greeting} /"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert not any(port_is_open(port) for port in local_ports)


def test_raydog_tunnel_reports_a_wrong_key_and_exits_1(sshd, keys, known_hosts):
    process = start_command("--head", sshd.host, "--ssh-port", str(sshd.port), "--user", sshd.user,
                            "--key", str(keys["wrong"]), "--known-hosts", known_hosts, "--any-local-port")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert f"raydog tunnel: accepting the unknown host key of [127.0.0.1]:{sshd.port}" in err
    assert f"raydog tunnel: SSH authentication failed for {sshd.user}@127.0.0.1:{sshd.port}" in err
    assert "Traceback" not in err and out == ""

