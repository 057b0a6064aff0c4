"""Run the sandbox: in process for tests (``start_sandbox``), or for the command line (``cli.py``).

    with start_sandbox(provision_delay=0.1) as sandbox:
        client = PlatformClient.create(ServicesSchema(defaultUrl=sandbox.url),
                                       ApiKey(sandbox.key_id, sandbox.key_secret))

The server is uvicorn on a socket bound before it starts (so ``port=0`` yields the real
port at once), serving ``routes.SandboxApi``; ``stop()`` ends the server, the clock, the
runtime calls in flight and finally the runtime (``runtime.close()``).

It listens on loopback unless ``allow_remote`` is given, and then only with keys of the
caller's own (the default key's secret is published).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import tempfile
import threading
from collections.abc import Iterable
from typing import Self

import uvicorn

from .backend import SandboxBackend
from .compute.templates import TemplateCatalogue, parse_template
from .faults import FaultInjector, FaultSpec, FaultSpecError, parse_faults
from .nodes.runtime import NodeRuntime, SimulatedRuntime
from .ratelimit import RateLimiter, parse_rate, rate_limited
from .routes import WILDCARD_ADDRESSES, SandboxApi, ServedHosts
from .scheduler import Scheduler
from .strictness import Strictness

log = logging.getLogger("raydog_sandbox")

DEFAULT_API_KEY = ("sandbox", "sandbox-secret")
MODES = ("simulate", "exec")


class SandboxStartError(RuntimeError):
    """The sandbox cannot start as asked (bad option, missing exec runtime, port in use)."""


def parse_api_keys(keys: dict[str, str] | Iterable[str] | None) -> dict[str, str]:
    """Accept {id: secret} or ["ID:SECRET", ...]; none given means the default sandbox key.

    An error names the key by its position, never by its text (which holds the secret).
    """
    if not keys:
        return dict([DEFAULT_API_KEY])
    pairs = list(keys.items()) if isinstance(keys, dict) else [_split_key(key, n) for n, key in enumerate(keys, 1)]
    for n, (key_id, secret) in enumerate(pairs, 1):
        problem = key_problem(key_id, secret)
        if problem:
            raise SandboxStartError(f"API key {n}: {problem}")
    return dict(pairs)


def _split_key(key: str, n: int) -> tuple[str, str]:
    key_id, sep, secret = key.partition(":")
    if not sep or not key_id or not secret:
        raise SandboxStartError(f"API key {n} must be ID:SECRET")
    return key_id, secret


def key_problem(key_id: str, secret: str) -> str | None:
    """Why an application key cannot travel in 'Authorization: yd-key ID:SECRET', or None."""
    if not key_id or not secret:
        return "the id and the secret must not be empty"
    if ":" in key_id:
        return "the id must not contain ':'"
    for what, value in (("id", key_id), ("secret", secret)):
        if not all("!" <= c <= "~" for c in value):
            return f"the {what} must be printable ASCII without spaces or line breaks"
    return None


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1)."""
    if host.strip().lower().strip("[]") in WILDCARD_ADDRESSES:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def make_runtime(mode: str, data_dir: str | None = None, userdata: bool = False) -> NodeRuntime:
    """SimulatedRuntime for simulate; nodes.exec_runtime.ExecRuntime (imported only now) for exec."""
    if mode == "simulate":
        return SimulatedRuntime()
    if mode != "exec":
        raise SandboxStartError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    try:
        from .nodes.exec_runtime import ExecRuntime  # type: ignore[import-not-found]
    except ModuleNotFoundError as error:
        if error.name != __package__ + ".nodes.exec_runtime":
            raise
        raise SandboxStartError("--mode exec needs raydog_sandbox.nodes.exec_runtime (the local node runtime), "
                                "which this installation does not have; use --mode simulate") from None
    data_dir = data_dir or tempfile.mkdtemp(prefix="raydog-sandbox-")
    try:
        return ExecRuntime(data_dir, run_userdata=userdata)
    except (RuntimeError, ValueError, OSError) as error:
        raise SandboxStartError(f"--mode exec cannot run here: {error}") from None


class RunningSandbox:
    """A sandbox serving on ``url`` until ``stop()``; also a context manager."""

    def __init__(self, api: SandboxApi, scheduler: Scheduler, server: uvicorn.Server,
                 thread: threading.Thread | None, host: str, port: int) -> None:
        self.api = api
        self.backend = api.backend
        self.runtime = api.runtime
        self._scheduler = scheduler
        self._server = server
        self._thread = thread
        self._stopped = False
        self.host = host
        self.port = port
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        # The API's URL as exec nodes reach it (their 127.0.0.1 is their own); None when nodes share the host's.
        self.node_url: str | None = None
        self.key_id, self.key_secret = next(iter(api.keys.keys.items()))

    @property
    def api_keys(self) -> dict[str, str]:
        return dict(self.api.keys.keys)

    @property
    def auth_headers(self) -> dict[str, str]:
        """The Authorization header of this sandbox's first key (the API and /sandbox/v1 changes need it)."""
        return {"Authorization": f"yd-key {self.key_id}:{self.key_secret}"}

    def state(self) -> dict:
        """What GET /sandbox/v1/state returns."""
        return self.backend.snapshot()

    def requests(self) -> dict:
        """What GET /sandbox/v1/requests returns: {"total": n, "routes": {"GET /workerPools/{id}": n}}."""
        return self.api.requests.snapshot()

    def reset_requests(self) -> None:
        self.api.requests.reset()

    def set_faults(self, spec: str | None) -> None:
        """Change the fault spec (see raydog_sandbox.faults); None or "" turns faults off."""
        self.api.faults.configure(parse_faults(spec))

    def kill_node(self, node_id: str) -> None:
        self.backend.kill_node(node_id)

    def terminate_pool(self, pool_id: str) -> None:
        self.backend.terminate_pool(pool_id)

    def abort_task(self, task_id: str) -> None:
        self.backend.abort_task(task_id)

    def cancel_work_requirement(self, wr_id: str) -> None:
        self.backend.cancel_work_requirement(wr_id)

    def stop(self) -> None:
        """Stop serving, stop the clock, wait for runtime calls in flight, close the runtime."""
        if self._stopped:
            return
        self._stopped = True
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._scheduler.close()
        self.runtime.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    mode: str = "simulate",
    provision_delay: float = 0.0,
    task_start_delay: float = 0.0,
    api_keys: dict[str, str] | Iterable[str] | None = None,
    faults: str | FaultSpec | None = None,
    max_nodes: int | None = None,
    runtime: NodeRuntime | None = None,
    templates: Iterable[str] = (),
    userdata: bool = False,
    data_dir: str | None = None,
    allow_remote: bool = False,
    allowed_hosts: Iterable[str] = (),
    strictness: Strictness | None = None,
    rate_limit: str | float | None = None,
) -> tuple[SandboxApi, Scheduler, uvicorn.Server, list[socket.socket]]:
    """Everything but the serving thread; raises SandboxStartError on a bad option."""
    if provision_delay < 0 or task_start_delay < 0:
        raise SandboxStartError("delays must not be negative")
    if max_nodes is not None and max_nodes < 0:
        raise SandboxStartError("--max-nodes must not be negative")
    try:
        spec = faults if isinstance(faults, FaultSpec) else parse_faults(faults)
        catalogue = TemplateCatalogue([parse_template(t) for t in templates])
        rate = parse_rate(rate_limit)
    except (FaultSpecError, ValueError) as error:
        raise SandboxStartError(str(error)) from None
    keys = parse_api_keys(api_keys)
    if not is_loopback_host(host):
        if not allow_remote:
            raise SandboxStartError(f"--host {host} is not a loopback address, so other machines could reach the "
                                    "sandbox; add --allow-remote if that is what you want")
        if keys.get(DEFAULT_API_KEY[0]) == DEFAULT_API_KEY[1]:
            raise SandboxStartError("--allow-remote needs an API key of your own (--api-key-file or "
                                    "RAYDOG_SANDBOX_API_KEY_ID/_SECRET): the default key's secret is published")
    try:
        sock = _listen(host, port)
    except OSError as error:
        if runtime is not None:
            runtime.close()
        raise SandboxStartError(f"cannot listen on {host}:{port}: {error}") from None
    sockets = [sock]
    try:
        bound_address, bound_port = sock.getsockname()[:2]
        runtime = runtime if runtime is not None else make_runtime(mode, data_dir, userdata)
        node_side = _listen_for_nodes(runtime, bound_port)
        if node_side is not None:
            sockets.append(node_side)
            allowed_hosts = [*allowed_hosts, "{}:{}".format(*node_side.getsockname()[:2])]
        hosts = ServedHosts(host, bound_address, bound_port, allowed_hosts)
    except BaseException as error:
        for opened in sockets:
            opened.close()
        if isinstance(error, ValueError):
            raise SandboxStartError(str(error)) from None
        raise
    backend = SandboxBackend(catalogue=catalogue, provision_delay=provision_delay, task_start_delay=task_start_delay,
                             max_nodes=max_nodes, simulate_exits=isinstance(runtime, SimulatedRuntime),
                             address_plan=getattr(runtime, "address_plan", None), strictness=strictness)
    scheduler = Scheduler(backend, runtime)
    api = SandboxApi(backend, runtime, keys, hosts, FaultInjector(spec))
    app = api.app if rate is None else rate_limited(api.app, RateLimiter(rate))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_keep_alive=75, backlog=2048,
                            timeout_graceful_shutdown=1)  # open update streams do not hold up a stop
    return api, scheduler, _Server(config), sockets


def _listen_for_nodes(runtime: NodeRuntime, port: int) -> socket.socket | None:
    """A second listening socket on the host's bridge address, at the API's port when free: exec nodes
    live in their own network namespaces, where 127.0.0.1 is their own, and software on them (the
    head's autoscaler) calls the API there. Only the host and its sandbox nodes reach that address."""
    address = getattr(runtime, "host_address", None)
    if not address:
        return None
    for candidate in (port, 0):
        try:
            return _listen(address, candidate)
        except OSError as error:
            problem = error
    log.warning("nodes cannot reach the sandbox API: listening on %s failed: %s", address, problem)
    return None


def start_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    mode: str = "simulate",
    provision_delay: float = 0.0,
    task_start_delay: float = 0.0,
    api_keys: dict[str, str] | Iterable[str] | None = None,
    faults: str | None = None,
    max_nodes: int | None = None,
    runtime: NodeRuntime | None = None,
    templates: Iterable[str] = (),
    userdata: bool = False,
    data_dir: str | None = None,
    allow_remote: bool = False,
    allowed_hosts: Iterable[str] = (),
    strict: bool = False,
    node_shutdown_delay: float | None = None,
    terminate_delay: float | None = None,
    rate_limit: str | float | None = None,
) -> RunningSandbox:
    """Start a sandbox serving in a background thread; returns once it accepts connections.

    ``runtime`` overrides the one ``mode`` would build; ``templates`` adds catalogue entries
    (``NS/NAME[=TYPE:VCPUS:RAM]``); ``userdata`` and ``data_dir`` are for exec mode. A
    ``host`` other than loopback needs ``allow_remote``; ``allowed_hosts`` adds Host header
    values (``NAME`` or ``NAME:PORT``) to those of the address it serves. ``strict``, the
    delays and ``rate_limit`` are `--strict`, `--node-shutdown-delay`, `--terminate-delay`
    and `--rate-limit`.
    """
    strictness = Strictness.of(strict, node_shutdown_delay, terminate_delay)
    return serve_in_background(*build_sandbox(host, port, mode, provision_delay, task_start_delay, api_keys,
                                              faults, max_nodes, runtime, templates, userdata, data_dir,
                                              allow_remote, allowed_hosts, strictness, rate_limit))


def serve_in_background(api: SandboxApi, scheduler: Scheduler, server: uvicorn.Server,
                        sockets: list[socket.socket]) -> RunningSandbox:
    """Serve on a daemon thread (so uvicorn installs no signal handlers); returns once serving.
    The first socket is the API's address; a second one, if any, is where nodes reach it."""
    bound_host, bound_port = sockets[0].getsockname()[:2]
    thread = threading.Thread(target=_serve, args=(server, sockets), name="sandbox-http", daemon=True)
    thread.start()
    running = RunningSandbox(api, scheduler, server, thread, bound_host, bound_port)
    if len(sockets) > 1:
        running.node_url = "http://{}:{}".format(*sockets[1].getsockname()[:2])
    while not server.started:
        if not thread.is_alive():
            running.stop()
            raise SandboxStartError("the sandbox's HTTP server did not start")
        thread.join(timeout=0.01)
    return running


class _Server(uvicorn.Server):
    """uvicorn's server, noticing a stop request within 10 ms instead of 100 ms (tests start hundreds)."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Its protocol is set explicitly so that asyncio turns on TCP_NODELAY for
    accepted connections (it checks sock.proto); without it every response waits ~40 ms for delayed ACKs."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _serve(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
    asyncio.run(server.serve(sockets=sockets))
