"""The go-plugin server Terraform talks to: handshake first, the provider's code after.

Terraform starts the provider four times per ``terraform apply`` and waits for the handshake
line on stdout each time. That line only needs a gRPC server listening with its TLS
certificate, so this module starts one before anything else is imported: no ``tf``
framework, no protobuf descriptors, no provider code. Every call goes through
``_Deferred``, which holds it until the provider's code is loaded (``load``, run by the main
thread right after the line is printed, while Terraform connects) and then passes it to the
framework's servicers and the interceptors ``load`` returns. A provider that fails to load
answers every call with the error, and still stops on Shutdown.

Modules that are imported but never used here, ``asyncio`` and ``grpc.aio`` (by ``grpc``,
~25 ms) and protobuf's pure-Python message implementation (by the generated ``_pb2``
modules, ~12 ms), are loaded only if something reads them (``defer_imports``).

A frozen provider holds its own GetProviderSchema answer, recorded by the build
(``prebuilt_schema``). It answers that call at once, and loads the provider's code only
when another call needs it: the first launch of every Terraform command only reads the
schema, so it exits without loading any (~55 ms sooner, and CPU left to the fork server).

Also here: a server that takes 256 MB messages, like Terraform's own providers, with
SERVER_THREADS threads; the framework's cached TLS certificate read without
``cryptography`` (``server_certificate``); a shutdown that does not cancel in-flight calls
and an exit when Terraform is gone (``GracefulShutdownInterceptor``).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import sys
import threading
import types
from typing import Callable, NamedTuple, Optional

# Terraform's own providers (terraform-plugin-go) accept and send messages of up to 256 MB;
# gRPC's default is 4 MB, which a state holding a large script outgrows.
MAX_MESSAGE_BYTES = 256 << 20
GRPC_SERVER_OPTIONS = (("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                       ("grpc.max_send_message_length", MAX_MESSAGE_BYTES))

# Calls served at once. Most node creates spend their time waiting (for the head's address,
# for a node): with `terraform apply -parallelism=N` above 10, every node of a large cluster
# must be able to wait at once, or the pools past the tenth start provisioning only when an
# earlier create returns.
SERVER_THREADS = 128

# Imported but not used by a synchronous gRPC server with protobuf's upb backend: asyncio
# and grpc.aio (imported by grpc, used by its asyncio API), and protobuf's pure-Python
# message implementation (imported by the generated modules' builder, which never calls it;
# with it come text_format, the decoder, pickle and datetime: ~12 ms).
DEFERRED_MODULES = ("asyncio", "grpc.aio", "google.protobuf.internal.python_message")

SHUTDOWN = "/plugin.GRPCController/Shutdown"
SCHEMA = "/tfplugin6.Provider/GetProviderSchema"
STDIO = "/plugin.GRPCStdio/StreamStdio"
# The provider's GetProviderSchema answer, serialized, which the build writes into the frozen
# provider next to this module (raydog.packaging.build).
PREBUILT_SCHEMA = "provider_schema.pb"

# Set in a child of the fork server (raydog.fork_server) when its launcher says Terraform is
# gone: the child's parent is the fork server, not Terraform.
TERRAFORM_GONE = threading.Event()


class Loaded(NamedTuple):
    """What ``load`` returns: the provider, the gRPC handlers of its services and the
    interceptors every call goes through (outermost first)."""

    provider: object
    handlers: list
    interceptors: list


class _DeferredModule(types.ModuleType):
    """Stands in ``sys.modules`` for a module until one of its attributes is read; the first
    read imports it (under a lock, once) and every read is answered by the real module."""

    _lock = threading.RLock()

    def __getattr__(self, attribute):
        with self._lock:
            real = self.__dict__.get("_real")
            if real is None:
                if sys.modules.get(self.__name__) is self:
                    del sys.modules[self.__name__]
                real = __import__(self.__name__, fromlist=["_"])
                self.__dict__["_real"] = real
        return getattr(real, attribute)


def defer_imports(names=DEFERRED_MODULES) -> None:
    """Make ``import name`` cheap for each of ``names`` not imported yet."""
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = _DeferredModule(name)


def server_certificate(framework_certificate: Optional[Callable] = None):
    """``tf.runner._self_signed_cert``, minus the ``cryptography`` import on a warm cache.

    The framework caches its self-signed certificate (valid 7 days) but parses it with
    ``cryptography`` in every launch only to read its expiry. The expiry is stored next to
    the cache with the certificate it belongs to, so a launch reads two small files; a
    missing, stale or mismatched record falls back to the framework, which renews the
    certificate if needed, and the record is rewritten.
    """
    import time

    import grpc

    cache = os.path.join(os.path.expanduser("~"), ".cache", "tf-python-provider", "ssl_cert.json")
    record = os.path.join(os.path.dirname(cache), "ssl_cert.expiry.json")
    try:
        with open(cache) as file:
            cached = json.load(file)
        with open(record) as file:
            expiry = json.load(file)
        if expiry["cert_pem"] == cached["cert_pem"] and expiry["not_after"] > time.time() + 60:
            return base64.b64decode(cached["cert_chain"]), grpc.ssl_server_credentials(
                private_key_certificate_chain_pairs=[(cached["key_pem"].encode(), cached["cert_pem"].encode())],
                require_client_auth=False,
            )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no record yet, or unreadable: the framework's path below
    if framework_certificate is None:
        import tf.runner

        framework_certificate = tf.runner._self_signed_cert
    chain, credentials = framework_certificate()
    try:
        from cryptography import x509  # already imported by the framework's path

        with open(cache) as file:
            cert_pem = json.load(file)["cert_pem"]
        not_after = x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc.timestamp()
        with open(record, "w") as file:
            json.dump({"cert_pem": cert_pem, "not_after": not_after}, file)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # next launch takes the framework's path again
    return chain, credentials


class GracefulShutdownInterceptor:
    """Like the framework's, except that StopProvider no longer kills in-flight calls.

    Terraform sends StopProvider on Ctrl-C and expects the provider to finish its calls
    promptly; GRPCController.Shutdown still ends the process when Terraform is done, and
    so does Terraform's death. ``stopping`` (the provider's event, once loaded) is set when
    Terraform is gone, so long waits end.
    """

    def __init__(self, stopping: Optional[threading.Event] = None):
        self.stopping = stopping
        self._stopped = False
        self.server = None
        self._parent = os.getppid()

    @property
    def stopped(self) -> bool:
        """Shut down by Terraform, or orphaned. The server loop reads this every 50 ms; a
        provider whose Terraform was killed outright (SIGKILL, a cancelled CI job) gets no
        Shutdown call and would otherwise wait for one forever."""
        if not self._stopped and (os.getppid() != self._parent or TERRAFORM_GONE.is_set()):
            logging.getLogger("raydog").warning("Terraform is gone; the provider exits")
            if self.stopping is not None:
                self.stopping.set()
            self._stopped = True
        return self._stopped

    @stopped.setter
    def stopped(self, value: bool) -> None:
        self._stopped = value

    def intercept_service(self, continuation, handler_call_details):
        result = continuation(handler_call_details)
        if handler_call_details.method == SHUTDOWN:
            self.stopped = True
            if self.server:
                self.server.stop(grace=0)
        return result


class _Deferred:
    """The server's one interceptor, there from the start: each call waits until the
    provider is loaded, then goes through the loaded interceptors to the loaded handlers."""

    def __init__(self, stopper: GracefulShutdownInterceptor, schema: Optional[bytes] = None) -> None:
        self.ready = threading.Event()
        self.wanted = threading.Event()  # a call needs the provider's code, or Terraform shuts it down
        self.stopper = stopper
        self.schema = schema
        self.interceptors: list = []
        self.handlers: list = []
        self.failure: Optional[str] = None

    def loaded(self, result: Loaded) -> None:
        self.stopper.stopping = getattr(result.provider, "stopping", None)
        self.handlers = list(result.handlers)
        self.interceptors = [*result.interceptors, self.stopper]
        self.ready.set()

    def failed(self, message: str) -> None:
        self.failure = message
        self.interceptors = [self.stopper]
        self.ready.set()

    def _find(self, details):
        if self.failure is not None:
            return _failing_handler(details.method, self.failure)
        for handler in self.handlers:
            found = handler.service(details)
            if found is not None:
                return found
        return None

    def intercept_service(self, continuation, handler_call_details):
        early = self._before_loading(handler_call_details)
        if early is not None:
            return early
        self.wanted.set()
        self.ready.wait()

        def through(index, details):
            if index == len(self.interceptors):
                return self._find(details)
            return self.interceptors[index].intercept_service(lambda d: through(index + 1, d), details)

        return through(0, handler_call_details)

    def _before_loading(self, details):
        """The calls answered without the provider's code, given a prebuilt schema: the schema
        itself (the only call of the first launch of every Terraform command), and while the
        code is not loaded, go-plugin's stdio stream and Shutdown."""
        import grpc

        if self.schema is None:
            return None
        if details.method == SCHEMA:
            schema = self.schema
            return grpc.unary_unary_rpc_method_handler(lambda request, context: schema)
        if self.ready.is_set():
            return None
        if details.method == STDIO:
            return grpc.unary_stream_rpc_method_handler(lambda request, context: iter(()))
        if details.method == SHUTDOWN:
            handler = self.stopper.intercept_service(lambda d: _failing_handler(SHUTDOWN, ""), details)
            self.wanted.set()  # the main thread wakes, finds the server stopped and exits
            return handler
        return None


def prebuilt_schema() -> Optional[bytes]:
    """The build's recorded GetProviderSchema answer, in a frozen provider; else None."""
    if not getattr(sys, "frozen", False):
        return None  # a source tree: the schema is whatever its code says now
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), PREBUILT_SCHEMA), "rb") as file:
            return file.read()
    except OSError:
        return None


def _failing_handler(method: str, message: str):
    import grpc

    def answer(request, context):
        if method == SHUTDOWN:
            return b""  # an empty message: the Shutdown Terraform expects
        context.abort(grpc.StatusCode.UNAVAILABLE, message)

    return grpc.unary_unary_rpc_method_handler(answer)


def make_server(interceptors: list):
    """A gRPC server with SERVER_THREADS threads and GRPC_SERVER_OPTIONS."""
    from concurrent import futures

    import grpc

    return grpc.server(futures.ThreadPoolExecutor(max_workers=SERVER_THREADS), interceptors=interceptors,
                       options=list(GRPC_SERVER_OPTIONS))


def _socket_directory() -> str:
    """A new private directory for the server's unix socket (what tempfile.mkdtemp makes,
    without importing tempfile before the handshake)."""
    base = os.environ.get("TMPDIR") or os.environ.get("TEMP") or os.environ.get("TMP") or "/tmp"
    for _ in range(100):
        path = os.path.join(base, "tmp" + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
        except OSError:
            break
    import tempfile

    return tempfile.mkdtemp()


def serve(load: Callable[[], Loaded], argv: Optional[list] = None, schema: Optional[bytes] = None) -> None:
    """Start the server, print the go-plugin handshake line, then ``load`` the provider, and
    serve until Terraform shuts the provider down (or is gone).

    Given ``schema`` (the serialized GetProviderSchema answer, ``prebuilt_schema``), the
    server answers that call itself and loads the provider only when another call needs it:
    the first launch of a Terraform command only reads the schema, and then exits without
    ever loading the provider's code.
    """
    defer_imports()
    argv = sys.argv if argv is None else argv
    # Ctrl-C in a terminal reaches the whole process group. Like go-plugin providers, ignore
    # it: Terraform itself asks us to stop (StopProvider) and then to exit (Shutdown).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopper = GracefulShutdownInterceptor()
    deferred = _Deferred(stopper, schema)
    server = make_server([deferred])
    stopper.server = server
    if "--dev" in argv:
        _serve_dev(server, deferred, load)
        return
    directory = "/tmp" if "--stable" in argv else _socket_directory()
    socket_path = os.path.join(directory, "py-tf-plugin.sock")
    try:
        chain, credentials = server_certificate()
        server.add_secure_port(f"unix://{socket_path}", credentials)
        server.start()
        sys.stdout.write(f"1|6|unix|{socket_path}|grpc|{base64.b64encode(chain).decode().rstrip('=')}\n")
        sys.stdout.flush()
        if schema is not None:
            while not deferred.wanted.wait(0.05) and not stopper.stopped:
                pass
        if not stopper.stopped:
            _load(deferred, load)
        while server.wait_for_termination(0.05):
            if stopper.stopped:
                break
    finally:
        for path, remove in ((socket_path, os.unlink), (directory, os.rmdir)):
            if path != "/tmp":
                try:
                    remove(path)
                except OSError:
                    pass


def _load(deferred: _Deferred, load: Callable[[], Loaded]) -> Optional[Loaded]:
    try:
        result = load()
    except BaseException as exc:  # noqa: BLE001 - every call reports it to Terraform
        import traceback

        from raydog import redaction
        from raydog.settings import ENV_FALLBACKS

        redaction.remember_secret(os.environ.get(ENV_FALLBACKS["application_key_secret"]))
        message = redaction.redact(f"the raydog provider failed to start: {type(exc).__name__}: {exc}")
        sys.stderr.write(redaction.redact(traceback.format_exc()))  # Terraform's log keeps the provider's stderr
        sys.stderr.flush()
        deferred.failed(message)
        return None
    deferred.loaded(result)
    return result


def _serve_dev(server, deferred: _Deferred, load: Callable[[], Loaded]) -> None:
    """The framework's ``--dev`` mode: an insecure socket Terraform reattaches to."""
    import tempfile

    result = _load(deferred, load)
    if result is None:
        raise SystemExit(1)
    with tempfile.TemporaryDirectory() as directory:
        socket_path = f"{directory}/py-tf-plugin.sock"
        server.add_insecure_port(f"unix://{socket_path}")
        reattach = {result.provider.full_name(): {
            "Protocol": "grpc", "ProtocolVersion": 6, "Pid": os.getpid(), "Test": True,
            "Addr": {"Network": "unix", "String": socket_path}}}
        server.start()
        print("Running in dev mode\n")
        print(f"\texport TF_REATTACH_PROVIDERS='{json.dumps(reattach)}'", flush=True)
        server.wait_for_termination()
