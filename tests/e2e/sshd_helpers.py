"""A real OpenSSH server on a loopback port, for the tunnel tests.

``ensure_sshd()`` finds ``sshd``, installing the distribution's ``openssh-server`` with
apt-get when it is missing (CI runs as root). ``start_sshd()`` runs it in the foreground
(``-D -e``) from a private config in a temporary directory: a generated host key, one
authorised test key, 127.0.0.1 on a free port, its own PidFile. /etc/ssh is never read.
``http_server()`` is a small HTTP server playing a service "on the remote side".
"""

from __future__ import annotations

import fcntl
import getpass
import os
import shutil
import socket
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness.waits import WaitTimeout, wait_until

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
INSTALL_LOCK = Path("/tmp/raydog-openssh-install.lock")
PRIVSEP_DIR = Path("/run/sshd")  # Debian's sshd refuses to start without it


def find_sshd() -> str | None:
    return shutil.which("sshd") or next((p for p in SSHD_CANDIDATES if os.access(p, os.X_OK)), None)


def ensure_sshd() -> tuple[str | None, str]:
    """(path of sshd, "") — installing openssh-server if needed — or (None, why it is impossible)."""
    found = find_sshd()
    if found:
        return found, ""
    if os.geteuid() != 0:
        return None, "sshd is not installed and installing openssh-server needs root"
    if not shutil.which("apt-get"):
        return None, "sshd is not installed and there is no apt-get to install openssh-server"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server"]
    with open(INSTALL_LOCK, "w") as lock:  # pytest-xdist workers install once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if find_sshd():
            return find_sshd(), ""
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:  # stale package lists: refresh once and retry
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=False)
            result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600, check=False)
    found = find_sshd()
    if found:
        return found, ""
    return None, f"installing openssh-server failed: {(result.stderr or result.stdout).strip()[-500:]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def keygen(path: Path, passphrase: str = "", kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "raydog-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


@dataclass
class SshServer:
    process: subprocess.Popen
    port: int
    user: str
    key_file: Path  # an authorised private key
    host_key_file: Path
    directory: Path
    host: str = "127.0.0.1"

    def log(self) -> str:
        return (self.directory / "sshd.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sshd(sshd: str, directory: Path, authorised_keys: list[Path], host: str = "127.0.0.1") -> SshServer:
    """sshd on <host>:<free port> (a loopback address), accepting only the given public keys for this user."""
    directory.mkdir(parents=True, exist_ok=True)
    PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    host_key = keygen(directory / "host_ed25519")
    authorized = directory / "authorized_keys"
    authorized.write_text("".join(Path(f"{k}.pub").read_text() for k in authorised_keys))
    authorized.chmod(0o600)
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        f"ListenAddress {host}\n"
        f"HostKey {host_key}\n"
        f"PidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "PermitRootLogin prohibit-password\n"
        "StrictModes no\n"
        "AllowTcpForwarding yes\n"
        "X11Forwarding no\n"
        "PrintMotd no\n"
        "LogLevel VERBOSE\n"
    )
    with open(directory / "sshd.log", "w") as log:
        process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    server = SshServer(process, port, getpass.getuser(), authorised_keys[0], host_key, directory, host)
    try:
        wait_until(lambda: (process.poll(), port_is_open(port, host)), f"sshd listens on port {port}", timeout=15,
                   until=lambda seen: seen[0] is not None or seen[1])
    except WaitTimeout:
        server.stop()
        raise RuntimeError(f"sshd did not start on port {port}:\n{server.log()}") from None
    if process.poll() is not None:
        server.stop()
        raise RuntimeError(f"sshd exited {process.returncode} instead of listening on port {port}:\n{server.log()}")
    return server


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{self.server.greeting} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def http_server(greeting: str):
    """An HTTP server on 127.0.0.1:<free port> answering ``<greeting> <path>``; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.daemon_threads = True
    server.greeting = greeting
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
