"""A certificate authority made for the test and a static HTTPS server on 127.0.0.1."""

from __future__ import annotations

from harness.terraform import Terraform

import sys

import subprocess

import datetime
import functools
import ipaddress
import ssl
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate it signed for 127.0.0.1 and localhost;
    returns (CA certificate, server certificate, server key) PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "raydog test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file


class _QuietHandler(SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        self.requests.append(self.path)


class HttpsServer:
    """Serve ``root`` read-only over HTTPS on 127.0.0.1; ``.url`` ends with a slash and
    ``.requests`` lists the paths asked for."""

    def __init__(self, root: Path, cert_file: Path, key_file: Path) -> None:
        self.requests: list[str] = []
        handler = type("Handler", (_QuietHandler,), {"requests": self.requests})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}/"
        self.ca_file: Path | None = None
        self._thread = threading.Thread(target=self._server.serve_forever, name="https-mirror", daemon=True)

    def __enter__(self) -> HttpsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


CLI = [sys.executable, "-m", "raydog.cli"]


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def workdir(path: Path, env: dict[str, str], hcl: str = "") -> Terraform:
    """A Terraform working directory needing yellowdog/raydog."""
    tf = Terraform(path, env)
    tf.write(hcl or 'data "raydog_node_script" "worker" {\n  template = "worker"\n}\n')
    return tf


def with_sandbox(env: dict[str, str], sandbox) -> dict[str, str]:
    return {**env, "YD_API_URL": sandbox.url, "YD_API_KEY_ID": sandbox.key_id, "YD_API_KEY_SECRET": sandbox.key_secret}


def raydog(venv: Path, *args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """The ``raydog`` command of ``venv``."""
    command = [str(venv / "bin" / "raydog"), *args]
    return run(command, env=env) if check else subprocess.run(command, env=env, capture_output=True, text=True)


def launch_provider(executable: Path, env: dict[str, str], timeout: float = 60) -> tuple[subprocess.Popen, bytes]:
    """Start a built provider as Terraform does: the process and its handshake line (b"" if it
    printed none within ``timeout``)."""
    proc = subprocess.Popen([executable], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line: dict[str, bytes] = {}
    reader = threading.Thread(target=lambda: line.setdefault("text", proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return proc, line.get("text", b"")
