"""The compute API (``/compute/...``): parse the request, call ``ComputeModel``, render the SDK's wire
format."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from yellowdog_client.model import (
    ComputeRequirement,
    ComputeRequirementSummary,
    ComputeRequirementSummarySearch,
    ComputeRequirementSupportedOperations,
    InstanceId,
    InstanceSearch,
    SimulatorComputeSource,
    SimulatorInstance,
    SingleSourceProvisionStrategy,
)

from ..records import ComputeRequirementRec, InstanceRec
from ..wire import SDK_PROVIDER, dumped, load, parse_search, path_param, sliced
from .models import ComputeModel, image_id
from .templates import REGION, Template


def render_compute_requirement(cr: ComputeRequirementRec) -> ComputeRequirement:
    source = SimulatorComputeSource(name="sandbox", region=REGION, instanceType=cr.template.instance_type,
                                    imageId=image_id(cr), instanceTags=cr.usage.instanceTags)
    source.id = cr.source_id
    source.provider = SDK_PROVIDER
    rendered = ComputeRequirement(
        namespace=cr.namespace, name=cr.name, provisionStrategy=SingleSourceProvisionStrategy(sources=[source]),
        tag=cr.tag, targetInstanceCount=cr.target,
        expectedInstanceCount=sum(1 for i in cr.instances if i.status.alive),
        maintainInstanceCount=cr.usage.maintainInstanceCount, nextStatus=cr.next_status,
        autoShutdown=cr.usage.autoShutdown)
    rendered.id = cr.id
    rendered.createdFromId = cr.template.id
    rendered.createdTime = cr.created
    rendered.statusChangedTime = cr.status_changed
    rendered.status = cr.status
    rendered.supportedOperations = ComputeRequirementSupportedOperations(
        canStopStart=False, canScaleOut=True, canReprovision=False)
    return rendered


def render_compute_requirement_summary(cr: ComputeRequirementRec) -> ComputeRequirementSummary:
    alive = sum(1 for i in cr.instances if i.status.alive)
    return ComputeRequirementSummary(
        id=cr.id, namespace=cr.namespace, name=cr.name, tag=cr.tag, targetInstanceCount=cr.target,
        expectedInstanceCount=alive, aliveInstanceCount=alive, createdTime=cr.created,
        statusChangedTime=cr.status_changed, status=cr.status, healthy=True)


def render_instance(instance: InstanceRec, cr: ComputeRequirementRec) -> SimulatorInstance:
    return SimulatorInstance(
        id=InstanceId(sourceId=cr.source_id, instanceId=instance.id), createdTime=instance.created,
        provider=SDK_PROVIDER, instanceType=cr.template.instance_type, region=REGION,
        imageId=image_id(cr), hostname=instance.hostname,
        privateIpAddress=instance.private_ip, publicIpAddress=instance.public_ip, spot=False,
        status=instance.status, statusChangedTime=instance.status_changed)


def render_template(template: Template) -> dict:
    """A static template as the SDK reads it (its sources are not shown)."""
    namespace, name = template.name.split("/", 1)
    return {"type": "co.yellowdog.platform.model.ComputeRequirementStaticTemplate", "id": template.id,
            "namespace": namespace, "name": name, "sources": [],
            "strategyType": "co.yellowdog.platform.model.SingleSourceProvisionStrategy"}


class ComputeResponses:
    """Handlers of the compute routes; ``routes.py`` maps each to its method and path."""

    def __init__(self, compute: ComputeModel) -> None:
        self.compute = compute

    def requirement_by_id(self, request: Request, body: Any) -> Any:
        return self.compute.get_compute_requirement(path_param(request, "id"), dumped(render_compute_requirement))

    def requirement_by_name(self, request: Request, body: Any) -> Any:
        return self.compute.get_compute_requirement_by_name(
            path_param(request, "namespace"), path_param(request, "name"), dumped(render_compute_requirement))

    def requirement_updating(self, request: Request, body: Any) -> Any:
        return self.compute.compute_requirement_updating(path_param(request, "id"))

    def update_requirement(self, request: Request, body: Any) -> Any:
        return self.compute.update_compute_requirement(load(body, ComputeRequirement, "the compute requirement"),
                                                       dumped(render_compute_requirement))

    def transition_requirement(self, request: Request, body: Any) -> Any:
        return self.compute.transition_compute_requirement(
            path_param(request, "id"), path_param(request, "status"), dumped(render_compute_requirement))

    def search_requirements(self, request: Request, body: Any) -> Any:
        query = request.query_params
        search = parse_search(ComputeRequirementSummarySearch, query)
        summaries = query.get("summaries", "").lower() == "true"
        render = render_compute_requirement_summary if summaries else render_compute_requirement
        return self.compute.search_compute_requirements(search, sliced(query, render))

    def template_by_id(self, request: Request, body: Any) -> Any:
        return self.compute.template(path_param(request, "id"), render_template)

    def template_by_name(self, request: Request, body: Any) -> Any:
        key = f"{path_param(request, 'namespace')}/{path_param(request, 'name')}"
        return self.compute.template(key, render_template)

    def search_instances(self, request: Request, body: Any) -> Any:
        query = request.query_params
        return self.compute.search_instances(
            parse_search(InstanceSearch, query),
            sliced(query, lambda i: render_instance(i, self.compute.compute_requirements[i.cr_id])))
