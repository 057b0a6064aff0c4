"""What a node resource's plan shows, and the checks a plan makes against the platform.

The plan shows every value the configuration fixes: the pool's YellowDog name, its
namespace (given, or read from an existing cluster), and the SHA-256 of the script its
nodes run (the built-in default when none is set). Where the provider is configured, a
create plan also asks the platform what the apply would otherwise find out half-way:
whether the template exists, whether the cluster is the one ``cluster_name`` says, and
whether a live pool of the same name belongs to someone else. Each problem is an error on
the attribute to fix. A look-up that fails for a transient reason is a warning: the apply
checks again.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Hashable, Optional

from tf.types import Unknown
from tf.utils import Diagnostics

from raydog import names
from raydog.lifecycle.node_pool import WORKER_POOL, check_task_group_budget
from raydog.lifecycle.scripts import effective_script, script_sha256
from raydog.yellowdog import PlatformError

if TYPE_CHECKING:
    from raydog.yellowdog import WorkRequirementInfo

# The configured provider (raydog.lifecycle.resource.ProviderContext, which imports this module).
ProviderContext = Any

TEMPLATE = "compute_requirement_template_id"
_MISSING = object()


class PlanLookups:
    """Platform reads made while planning, cached for the provider process: a plan of many
    pools costs one request per distinct template or cluster, even when planned in parallel."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        # YellowDog names of pools this process plans to replace: their replacement's create
        # plan must not take the old pool (still live) for someone else's.
        self.replacing: set[tuple[str, str]] = set()

    def get(self, key: Hashable, fetch: Callable[[], Any]) -> Any:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            value = self._values.get(key, _MISSING)
            if value is _MISSING:
                value = fetch()  # a PlatformError is not cached: the next plan asks again
                self._values[key] = value
            return value


def known(value: Any) -> bool:
    return value is not None and value is not Unknown


class NodePlanning:
    """Plan-time values and checks of the head, the observability node and the worker pools.

    Subclasses say how their pool's name ends (``pool_suffix``) and which script attribute
    and built-in template they use.
    """

    provider: ProviderContext
    script_attribute: ClassVar[str]
    script_template: ClassVar[str]
    # What the platform cannot report back on import: taken from the configuration in place.
    unreadable_on_import: ClassVar[tuple[str, ...]] = ("userdata", "images_id")

    def pool_suffix(self, values: dict) -> Any:
        """The part of the pool's YellowDog name after ``<cluster_name>-`` (Unknown when not yet known)."""
        raise NotImplementedError

    def name_path(self) -> list:
        """The attribute that names the pool, for a name already taken."""
        raise NotImplementedError

    # -- create ------------------------------------------------------------------------

    def plan_create(self, ctx, proposed: dict, planned: dict) -> dict:
        planned["script_sha256"] = self.planned_sha256(proposed.get(self.script_attribute))
        cluster_name, suffix = proposed.get("cluster_name"), self.pool_suffix(proposed)
        pool_name = names.pool_name(cluster_name, suffix) if known(cluster_name) and known(suffix) else Unknown
        planned["yellowdog_name"] = pool_name
        checks = PlanChecks(self.provider, ctx.diagnostics)
        cluster = checks.cluster(proposed)
        if cluster is not None and not cluster.finished:
            check_task_group_budget(ctx.diagnostics, cluster, ["cluster_id"])
        namespace = proposed.get("namespace")
        if not known(namespace):
            namespace = cluster.namespace if cluster is not None else Unknown
            planned["namespace"] = namespace
        checks.template(proposed.get(TEMPLATE))
        # The name is shown only once it is checked: a name some pool already had may be taken
        # by its next generation (<name>--2) on a platform that keeps finished names.
        if not (known(namespace) and known(pool_name)) or not checks.pool_name_unused(
                namespace, pool_name, self.name_path()):
            planned["yellowdog_name"] = Unknown
        return planned

    def planned_sha256(self, script: Any) -> Any:
        if script is Unknown:
            return Unknown
        return script_sha256(effective_script(script, self.script_template))

    # -- update ------------------------------------------------------------------------

    def plan(self, ctx, current: Optional[dict], planned: dict) -> dict:
        if current is None:
            return planned
        script = self.script_attribute
        if script in ctx.changed_fields or not current.get("script_sha256"):
            sha = self.planned_sha256(planned.get(script))
            if known(sha) and sha == current.get("script_sha256"):
                ctx.in_place.add(script)  # the same script (e.g. the default, written out): no new node
            planned["script_sha256"] = sha
        if TEMPLATE in ctx.changed_fields and PlanChecks(self.provider, ctx.diagnostics).same_template(
                current.get(TEMPLATE), planned.get(TEMPLATE)):
            ctx.in_place.add(TEMPLATE)
        for attribute in ctx.prior_private.get("imported_without", ()):
            if attribute in ctx.changed_fields and current.get(attribute) is None:
                ctx.in_place.add(attribute)  # imported as unknown: the configuration's value is recorded
        return planned

    def planned_replacement(self, current: dict) -> None:
        """Called when the plan replaces this resource: its create plan follows."""
        if current.get("namespace") and current.get("yellowdog_name"):
            self.provider.lookups.replacing.add((current["namespace"], current["yellowdog_name"]))


class PlanChecks:
    """The platform checks of one plan, reporting to ``diags``; silent when the provider has no client."""

    def __init__(self, provider: ProviderContext, diags: Diagnostics) -> None:
        self.provider = provider
        self.diags = diags

    def _lookup(self, key: Hashable, what: str, fetch: Callable[[], Any]) -> Any:
        if not self.provider.configured:
            return _MISSING
        try:
            return self.provider.lookups.get(key, fetch)
        except PlatformError as exc:
            self.diags.add_warning(f"Could not check {what} at plan time", f"{exc}. The apply checks it again.")
            return _MISSING

    def template_id(self, reference: Any) -> Any:
        """The id of the template ``reference`` names, None when there is none, _MISSING when unknown."""
        if not known(reference) or not str(reference).strip():
            return _MISSING
        reader = self.provider.reader if self.provider.configured else None
        return self._lookup(("template", reference), f"template {reference}",
                            lambda: reader.resolve_template(reference))

    def template(self, reference: Any) -> None:
        if self.template_id(reference) is None:
            self.diags.add_error(
                "Compute requirement template not found",
                f'YellowDog has no compute requirement template "{reference}". Give an existing template\'s '
                "id (ydid:crt:...) or namespace/name; the platform's console lists them.",
                path=[TEMPLATE])

    def same_template(self, before: Any, after: Any) -> bool:
        """Whether two references (an id and a namespace/name) name the same template."""
        after_id = self.template_id(after)
        if after_id is None:
            self.template(after)
            return False
        before_id = self.template_id(before)
        return after_id is not _MISSING and before_id is not _MISSING and before_id == after_id

    def cluster(self, values: dict) -> Optional["WorkRequirementInfo"]:
        """The cluster's work requirement when ``cluster_id`` is known; errors when it does not fit."""
        cluster_id = values.get("cluster_id")
        if not known(cluster_id):
            return None
        client = self.provider.client if self.provider.configured else None
        wr = self._lookup(("cluster", cluster_id), f"cluster {cluster_id}",
                          lambda: client.get_work_requirement(cluster_id))
        if wr is _MISSING:
            return None
        if wr is None or wr.finished:
            status = "does not exist" if wr is None else f"is {wr.status}"
            self.diags.add_error("The cluster is gone", f"Work requirement {cluster_id} {status}; use the id of a "
                                 "live raydog_cluster (raydog_cluster.<name>.id).", path=["cluster_id"])
            return None
        cluster_name = values.get("cluster_name")
        if known(cluster_name) and not names.is_generation_of(wr.name, cluster_name):
            self.diags.add_error(
                "cluster_name does not match the cluster",
                f'cluster_name is "{cluster_name}" but cluster_id {wr.id} is the cluster "{wr.name}"; '
                "set cluster_name = raydog_cluster.<name>.name for the same cluster as cluster_id.",
                path=["cluster_name"])
        namespace = values.get("namespace")
        if known(namespace) and wr.namespace != namespace:
            self.diags.add_error(
                "namespace does not match the cluster",
                f'namespace is "{namespace}" but cluster {wr.name} ({wr.id}) is in namespace "{wr.namespace}"; '
                "set namespace = raydog_cluster.<name>.namespace, or leave it unset.",
                path=["namespace"])
        return wr

    def pool_name_unused(self, namespace: str, pool_name: str, path: list) -> bool:
        """Whether no pool ever had this name, so the create will take it as it is; an error
        when a live pool of the name exists that this configuration did not create.

        Ours are those whose worker tag (the token of the create that made it) is in this
        working directory's ownership journal, and those being replaced in this plan: the
        apply adopts or recovers them. Any other live pool of the name is refused here, at
        plan, as the apply would refuse it. A name some pool had (live or finished) may be
        taken by its next generation (``<name>--2``) on a platform that keeps finished names.
        """
        if not self.provider.configured or (namespace, pool_name) in self.provider.lookups.replacing:
            return False
        label = f"{namespace}/{pool_name}"
        try:
            # The common answer (no pool of the name) without the SDK; a pool of the name is read in full.
            if not self.provider.reader.pool_name_used(namespace, pool_name):
                return True
            pool = self.provider.client.find_pool(namespace, pool_name)
            if pool is None:
                return True
            if not pool.live or pool.worker_tag in self.provider.ownership.tokens(WORKER_POOL, namespace, pool_name):
                return False
        except PlatformError as exc:
            self.diags.add_warning(f"Could not check worker pool {label} at plan time",
                                   f"{exc}. The apply checks it again.")
            return False
        self.diags.add_error(
            "Worker pool name already in use",
            f'YellowDog already has a live worker pool "{label}" ({pool.id}, {pool.status}) that this '
            f"configuration did not create. Give this pool another {path[-1]}, or bring that pool under "
            f'Terraform with an import block (id = "{pool.id}").',
            path=path)
        return False
