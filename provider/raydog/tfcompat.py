"""What the ``tf`` framework (1.2.0) lacks, added in one place.

Each addition is small and has a test in tests/unit/test_tfcompat.py:

- ``SingleNestedBlock``: a ``timeouts { create = "10m" }`` block, decoded to a dict or None.
- ``RaydogServicer``: the framework's ProviderServicer, plus
  * a plan on create (``Resource.plan_create(ctx, proposed, planned)``) so computed
    values known from the configuration appear in the plan;
  * one plan path for updates: a replacement when the planned value of an attribute flagged
    ``requires_replace`` differs from the prior one, whether the configuration or ``plan()``
    changed it (a head whose task ended outside Terraform), unless ``plan()`` puts it in
    ``ctx.in_place`` (a template named by id in state and by ``namespace/name`` in the
    configuration: the same template);
  * private state kept through read and plan (the framework drops it), and set on import to
    the attributes the platform cannot report (``unreadable_on_import``): their first value
    from the configuration is recorded in place instead of replacing the imported object;
  * ``UpgradeResourceState`` that fills keys added to a schema and drops removed ones,
    with no "Using default upgrade" warning, then lets the resource rewrite values whose
    meaning changed (``upgrade_state``);
  * ``ReadDataSource`` that encodes values through the schema's types (the framework
    returns raw Python values);
  * import, create and read results completed to every schema key (Terraform rejects
    partial objects).
- A graceful StopProvider: the framework stops the gRPC server at once, which cancels
  in-flight calls so nothing of a half-done create reaches state. Here StopProvider only
  sets the provider's ``stopping`` event; long waits poll it and return partial state with an error, so Terraform
  records the object as tainted (the server side, with the exit of a provider whose
  Terraform died without a Shutdown call, is in ``raydog.go_plugin``).
- Refined unknown values: Terraform 1.6+ sends an unknown whose range it knows (e.g. the
  result of ``"x${var.n}"``) as msgpack extension 12; the framework only knows extension
  0 and would hand resources raw ExtType objects. Both decode to ``Unknown`` here.
- Values checked at plan: PlanResourceChange runs the resource's attribute checks on the
  values known by then (Terraform validates before values from other resources are known).
- ``services``: logging to stderr at the level TF_LOG_PROVIDER / TF_LOG ask for, redacted
  (``raydog.redaction``), as are diagnostics and escaping exceptions; then the servicers'
  gRPC handlers, which ``raydog.go_plugin`` serves (the framework's ``run_provider`` is not
  used: its server, TLS set-up and handshake are there, before this module is imported).

A create that returns state together with an error diagnostic is stored by Terraform as
tainted; the framework already passes that through, so resources rely on it directly.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

# The patches below reach into private parts of this exact release of the framework.
WRITTEN_FOR_TF = "1.2.0"


def _check_framework_version() -> None:
    # The pinned release's metadata beside the package answers without importlib.metadata, whose
    # import and scan of every path entry cost ~25 ms in each of Terraform's provider launches.
    import importlib.util

    spec = importlib.util.find_spec("tf")
    site = os.path.dirname(os.path.dirname(spec.origin)) if spec is not None and spec.origin else None
    if site is not None and os.path.isdir(os.path.join(site, f"tf-{WRITTEN_FOR_TF}.dist-info")):
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("tf")
    except PackageNotFoundError:
        installed = "not installed"
    if installed != WRITTEN_FOR_TF:
        raise RuntimeError(
            f"raydog's compatibility layer (raydog/tfcompat.py) was written for the tf framework "
            f"{WRITTEN_FOR_TF}, but tf {installed} is installed; install tf=={WRITTEN_FOR_TF} "
            "(pyproject.toml pins it) or port the patches in tfcompat.py to the new release")


_check_framework_version()

from tf.blocks import NestedBlock  # noqa: E402  (after the version check: the patches depend on it)
from tf.schema import Block, NestMode, Schema  # noqa: E402
from tf.types import Unknown  # noqa: E402
from tf.iface import PlanContext  # noqa: E402
from tf.utils import Diagnostics  # noqa: E402

# msgpack extension codes Terraform uses for unknown values: 0, and 12 for a "refined"
# unknown (one whose prefix, range or nullness Terraform already knows).
_UNKNOWN_EXT_CODES = frozenset({0, 12})


def _msgpack_ext_hook(code, data):
    import msgpack

    return Unknown if code in _UNKNOWN_EXT_CODES else msgpack.ExtType(code, data)


def _install_unknown_decoding() -> None:
    import tf.utils

    tf.utils._msgpack_ext_hook = _msgpack_ext_hook


_install_unknown_decoding()


@dataclass
class RaydogPlanContext(PlanContext):
    """``PlanContext`` plus what a raydog plan needs: the prior private state, and the
    attributes flagged requires_replace whose planned change is made in place."""

    prior_private: dict = field(default_factory=dict)
    in_place: set = field(default_factory=set)


class SingleNestedBlock(NestedBlock):
    """A block that appears at most once, held in Python as a dict (or None when absent)."""

    def __init__(self, type_name: str, block: Block):
        super().__init__(type_name, NestMode.Single, block)

    def encode(self, value: Any) -> Any:
        from tf.provider import _encode_state_d

        if value is None or value is Unknown:
            return value
        return _encode_state_d(self._amap(), self._bmap(), value, None)

    def decode(self, value: Any) -> Any:
        from tf.provider import _decode_state

        if value is None or value is Unknown:
            return value
        return _decode_state(Diagnostics(), self._amap(), self._bmap(), value)[1]

    def semantically_equal(self, a_decoded, b_decoded) -> bool:
        if a_decoded is None or b_decoded is None:
            return a_decoded is b_decoded
        names = [a.name for a in self.block.attributes]
        return all(a_decoded.get(n) == b_decoded.get(n) for n in names)


def empty_block_value(block: NestedBlock) -> Any:
    """The value Terraform expects for an absent block of this kind."""
    return None if block.nesting_mode is NestMode.Single else []


def complete_state(schema: Schema, state: Optional[dict]) -> Optional[dict]:
    """Return ``state`` with every attribute and block key of ``schema`` present and no other key."""
    if state is None:
        return None
    full = {a.name: state.get(a.name) for a in schema.attributes}
    for b in schema.block_types:
        full[b.type_name] = state.get(b.type_name, empty_block_value(b))
    return full


def _make_servicer_class():
    """Build the servicer subclass lazily: importing grpc costs ~100 ms we only pay when serving."""
    from copy import deepcopy

    from tf.gen import tfplugin_pb2 as pb
    from tf.provider import ProviderServicer, _decode_state, _encode_state
    from tf.utils import _to_attribute_path, to_dynamic_value

    class RaydogServicer(ProviderServicer):
        def PlanResourceChange(self, request, context):
            refused = self._refuse_invalid_values(request)
            if refused is not None:
                return refused
            diags = Diagnostics()
            attrs = self._get_res_attrs(request.type_name)
            blocks = self._get_res_blocks(request.type_name)
            _, prior = _decode_state(diags, attrs, blocks, request.prior_state)
            proposed_enc, proposed = _decode_state(diags, attrs, blocks, request.proposed_new_state)
            if diags.has_errors() or proposed is None:
                # Destroy plans are not requested (no plan_destroy capability): pass through.
                return pb.PlanResourceChange.Response(planned_state=request.proposed_new_state,
                                                      diagnostics=diags.to_pb())
            klass = self._get_res_cls(request.type_name)
            inst = self.app.new_resource(klass)
            if prior is None:
                planned = {k: v if k in blocks or v is not None else (None if not attrs[k].computed
                                                                         else attrs[k].default)
                           for k, v in proposed.items()}
                ctx = RaydogPlanContext(diags, request.type_name, changed_fields=set())
                plan_create = getattr(inst, "plan_create", None)
                if plan_create is not None:
                    planned = plan_create(ctx, deepcopy(proposed), planned)
                if diags.has_errors() or planned is None:
                    return pb.PlanResourceChange.Response(diagnostics=diags.to_pb())
                return pb.PlanResourceChange.Response(
                    planned_state=_encode_state(attrs, blocks, planned, proposed_enc), diagnostics=diags.to_pb())
            changed = {k for k in attrs if k in prior and k in proposed
                       and not attrs[k].type.semantically_equal(prior[k], proposed[k])}
            ctx = RaydogPlanContext(diags, request.type_name, changed_fields=changed,
                                    prior_private=read_private(request.prior_private))
            planned = inst.plan(ctx, deepcopy(prior), deepcopy(proposed))
            if diags.has_errors() or planned is None:
                return pb.PlanResourceChange.Response(diagnostics=diags.to_pb())
            # Replace for every requires_replace attribute whose planned value differs from the
            # prior one (whether the configuration or plan() changed it), unless plan() said the
            # change is made in place (ctx.in_place).
            replace = [_to_attribute_path([name]) for name, attribute in attrs.items()
                       if attribute.requires_replace and name not in ctx.in_place
                       and not attribute.type.semantically_equal(prior.get(name), planned.get(name))]
            if replace and hasattr(inst, "planned_replacement"):
                inst.planned_replacement(prior)
            return pb.PlanResourceChange.Response(
                planned_state=_encode_state(attrs, blocks, planned, proposed_enc),
                requires_replace=replace,
                planned_private=request.prior_private,
                diagnostics=diags.to_pb(),
            )

        def ReadResource(self, request, context):
            response = super().ReadResource(request, context)
            response.private = request.private  # the framework drops private state
            return response

        def _refuse_invalid_values(self, request):
            """The resource's attribute checks, on the values the plan knows now.

            Terraform validates a configuration before it knows the values that come from
            other resources; the plan made when they are known (at plan time, or again at
            apply) checks them, so a value known only at apply fails before any request too."""
            table = getattr(self._get_res_cls(request.type_name), "table", None)
            if table is None:
                return None
            diags = Diagnostics()
            _, proposed = _decode_state(diags, self._get_res_attrs(request.type_name),
                                        self._get_res_blocks(request.type_name), request.proposed_new_state)
            if proposed is None or diags.has_errors():
                return None
            table.report(diags, proposed)
            return pb.PlanResourceChange.Response(diagnostics=diags.to_pb()) if diags.has_errors() else None

        def ImportResourceState(self, request, context):
            response = super().ImportResourceState(request, context)
            klass = self._get_res_cls(request.type_name)
            unreadable = getattr(klass, "unreadable_on_import", ())
            for imported in response.imported_resources:
                if unreadable:
                    imported.private = write_private({"imported_without": list(unreadable)})
            return response

        def UpgradeResourceState(self, request, context):
            diags = Diagnostics()
            if len(request.raw_state.flatmap) != 0:
                diags.add_error("Legacy flatmap state is not supported", "Re-import the resource.")
                return pb.UpgradeResourceState.Response(diagnostics=diags.to_pb())
            klass = self._get_res_cls(request.type_name)
            state = json.loads(request.raw_state.json)
            state = complete_state(klass.get_schema(), state)
            if hasattr(klass, "upgrade_state"):
                state = klass.upgrade_state(state)
            return pb.UpgradeResourceState.Response(upgraded_state=to_dynamic_value(state), diagnostics=diags.to_pb())

        def ReadDataSource(self, request, context):
            from tf.utils import read_dynamic_value

            klass = self._get_ds_cls(request.type_name)
            schema = klass.get_schema()
            attrs = {a.name: a for a in schema.attributes}
            blocks = {b.type_name: b for b in schema.block_types}
            diags = Diagnostics()
            _, config = _decode_state(diags, attrs, blocks, read_dynamic_value(request.config))
            if diags.has_errors():
                return pb.ReadDataSource.Response(diagnostics=diags.to_pb())
            inst = self.app.new_data_source(klass)
            from tf.iface import ReadDataContext

            state = complete_state(schema, inst.read(ReadDataContext(diags, request.type_name), config))
            return pb.ReadDataSource.Response(
                diagnostics=diags.to_pb(), state=_encode_state(attrs, blocks, state, None)
            )

        def StopProvider(self, request, context):
            logging.getLogger("raydog").warning("Terraform asked the provider to stop; ending waits early")
            self.app.stopping.set()
            return pb.StopProvider.Response()

    return RaydogServicer


def read_private(raw: bytes) -> dict:
    """A resource's private state (JSON bytes that Terraform keeps beside the state)."""
    try:
        value = json.loads(raw.decode()) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def write_private(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True).encode() if value else b""



# Python has no TRACE level; Terraform's finest is below DEBUG.
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

# Terraform's level names (TF_LOG / TF_LOG_PROVIDER) -> Python's; None: logging is off.
_TERRAFORM_LEVELS = {"TRACE": TRACE, "JSON": TRACE, "DEBUG": logging.DEBUG, "INFO": logging.INFO,
                     "WARN": logging.WARNING, "ERROR": logging.ERROR, "OFF": None}


def log_level(environ) -> Optional[int]:
    """The level Terraform asks of a provider: TF_LOG_PROVIDER, else TF_LOG; None when both are unset
    or "off". An unrecognised name means TRACE, as Terraform itself reads it."""
    name = (environ.get("TF_LOG_PROVIDER") or environ.get("TF_LOG") or "").strip().upper()
    if not name:
        return None
    return _TERRAFORM_LEVELS.get(name, TRACE)


class _TerraformLogFormatter(logging.Formatter):
    """Prefix lines with the level names Terraform's log reader recognises."""

    _levels = {"WARNING": "WARN", "CRITICAL": "ERROR"}

    def format(self, record: logging.LogRecord) -> str:
        level = self._levels.get(record.levelname, record.levelname)
        line = f"[{level}] {record.name}: {record.getMessage()}"
        return f"{line}\n{record.exc_text}" if record.exc_text else line


def configure_logging(environ=None) -> None:
    """Log to stderr at the level TF_LOG_PROVIDER / TF_LOG ask for (nothing when unset),
    with the key secret and URL user-info redacted from every line."""
    from raydog import redaction
    from raydog.settings import ENV_FALLBACKS

    environ = os.environ if environ is None else environ
    redaction.remember_secret(environ.get(ENV_FALLBACKS["application_key_secret"]))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TerraformLogFormatter())
    handler.addFilter(redaction.RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = log_level(environ)
    root.setLevel(logging.CRITICAL + 10 if level is None else level)
    # An exception nothing caught (in any thread) goes through the same redacting handler.
    sys.excepthook = lambda kind, value, tb: logging.getLogger("raydog").error(
        "uncaught exception", exc_info=(kind, value, tb))
    threading.excepthook = lambda hook: logging.getLogger("raydog").error(
        "uncaught exception in thread %s", getattr(hook.thread, "name", "?"),
        exc_info=(hook.exc_type, hook.exc_value, hook.exc_traceback))
    # urllib3 logs every request line at DEBUG; keep it quiet unless TRACE is asked for.
    logging.getLogger("urllib3").setLevel(logging.WARNING if level is None or level > TRACE else TRACE)


class _RedactedTraceback:
    """Stands in for the ``traceback`` module in ``tf.provider``: a failing call's traceback
    goes to the log (levelled and redacted) instead of raw to stderr."""

    @staticmethod
    def print_exc(*args, **kwargs) -> None:
        logging.getLogger("raydog").exception("a provider call failed")  # called in the framework's handler


class _RedactedErrors:
    """The framework's first gRPC interceptor, plus: an exception that escapes a call reaches
    Terraform as an error whose text is redacted (gRPC itself would send ``str(exc)`` as it is)."""

    def __init__(self, framework_interceptor) -> None:
        self._framework = framework_interceptor

    def intercept_service(self, continuation, handler_call_details):
        import grpc

        handler = self._framework.intercept_service(continuation, handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        call = handler.unary_unary

        def guarded(request, context):
            from raydog import redaction

            try:
                return call(request, context)
            except Exception as exc:  # noqa: BLE001 - reported to Terraform, redacted
                context.abort(grpc.StatusCode.UNKNOWN,
                              redaction.redact(f"Exception calling application: {type(exc).__name__}: {exc}"))

        return handler._replace(unary_unary=guarded)


def _install_redaction() -> None:
    """Every diagnostic's summary and detail, and every failing call's traceback, redacted."""
    import tf.provider
    import tf.utils

    from raydog import redaction

    to_pb = tf.utils.Diagnostic.to_pb

    def redacted_to_pb(self):
        self.summary, self.detail = redaction.redact(self.summary), redaction.redact(self.detail)
        return to_pb(self)

    tf.utils.Diagnostic.to_pb = redacted_to_pb
    tf.provider.traceback = _RedactedTraceback


class _Handlers:
    """Stands in for the gRPC server in the generated ``add_*_to_server`` functions: keeps
    their generic handlers, which ``raydog.go_plugin`` serves once the server is running."""

    def __init__(self) -> None:
        self.generic: list = []

    def add_generic_rpc_handlers(self, handlers) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service, handlers) -> None:
        pass  # the same methods as the generic handlers, which serve them


class _PassThrough:
    """The framework's logging interceptor when TF_PLUGIN_DEBUG is not 1: it does nothing then."""

    @staticmethod
    def intercept_service(continuation, handler_call_details):
        return continuation(handler_call_details)


def services(provider):
    """``provider`` served by the framework's servicers with the additions above: the gRPC
    handlers (Provider, GRPCController, GRPCStdio) and the interceptors every call goes
    through, for ``raydog.go_plugin.serve`` (which also sets up what the framework's
    ``run_provider`` did around them: TLS, 256 MB messages, a graceful shutdown)."""
    from tf.gen import grpc_controller_pb2 as controller_pb
    from tf.gen import grpc_controller_pb2_grpc as controller_rpc
    from tf.gen import grpc_stdio_pb2_grpc as stdio_rpc
    from tf.gen import tfplugin_pb2_grpc as rpc

    configure_logging()
    _install_redaction()

    class Controller(controller_rpc.GRPCControllerServicer):
        def Shutdown(self, request, context):  # the server stops in go_plugin's interceptor
            return controller_pb.Empty()

    class Stdio(stdio_rpc.GRPCStdioServicer):
        def StreamStdio(self, request, context):  # nothing to stream; answered so go-plugin logs no error
            return iter([])

    handlers = _Handlers()
    rpc.add_ProviderServicer_to_server(_make_servicer_class()(provider), handlers)
    controller_rpc.add_GRPCControllerServicer_to_server(Controller(), handlers)
    stdio_rpc.add_GRPCStdioServicer_to_server(Stdio(), handlers)
    if os.environ.get("TF_PLUGIN_DEBUG") == "1":
        import tf.runner

        framework_interceptor = tf.runner._LoggingInterceptor()
    else:
        framework_interceptor = _PassThrough()
    return handlers.generic, [_RedactedErrors(framework_interceptor)]
