"""The work API (``/work/...``): parse the request, call ``WorkModel``, render the SDK's wire format."""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.requests import Request
from yellowdog_client.common.json import Json
from yellowdog_client.model import (
    Task,
    TaskGroup,
    TaskSearch,
    TaskStatus,
    TaskSummary,
    WorkRequirement,
    WorkRequirementSearch,
    WorkRequirementStatus,
    WorkRequirementSummary,
)

from ..errors import InvalidRequest
from ..records import GroupRec, TaskRec, WorkRequirementRec
from ..wire import bool_param, dumped, event_stream, load, parse_search, path_param, require_object, sliced
from .models import WorkModel


FINISHED_WR_STATUSES = frozenset(status.name for status in WorkRequirementStatus if status.finished)


def render_work_requirement(wr: WorkRequirementRec) -> WorkRequirement:
    rendered = WorkRequirement(namespace=wr.namespace, name=wr.name,
                               taskGroups=[render_task_group(g) for g in wr.groups], tag=wr.tag,
                               priority=wr.priority)
    rendered.id = wr.id
    rendered.createdTime = wr.created
    rendered.status = wr.status
    rendered.statusChangedTime = wr.status_changed
    return rendered


def render_task_group(group: GroupRec) -> TaskGroup:
    rendered = TaskGroup(
        name=group.name, runSpecification=group.run_spec, tag=group.tag, priority=group.priority,
        dependencies=group.dependencies or None, starved=False, waitingOnDependency=False,
        finishIfAllTasksFinished=group.finish_all, finishIfAnyTaskFailed=group.finish_any_failed,
        completedTaskTtl=group.completed_ttl, taskTemplate=group.task_template)
    counts = Counter(task.status for task in group.tasks)
    rendered.id = group.id
    rendered.status = group.status
    rendered.statusChangedTime = group.status_changed
    rendered.taskSummary = TaskSummary(statusCounts={status: counts.get(status, 0) for status in TaskStatus},
                                       taskCount=len(group.tasks), lastUpdatedTime=group.status_changed)
    return rendered


def render_work_requirement_summary(wr: WorkRequirementRec) -> WorkRequirementSummary:
    tasks = [task for group in wr.groups for task in group.tasks]
    return WorkRequirementSummary(
        id=wr.id, namespace=wr.namespace, name=wr.name, tag=wr.tag, createdTime=wr.created,
        statusChangedTime=wr.status_changed, priority=wr.priority,
        completedTaskCount=sum(1 for t in tasks if t.status is TaskStatus.COMPLETED), totalTaskCount=len(tasks),
        status=wr.status, healthy=True)


def render_task(task: TaskRec) -> Task:
    rendered = Task(name=task.name, tag=task.tag, taskType=task.task_type, arguments=task.arguments,
                    taskData=task.task_data, environment=task.environment, startedTime=task.started,
                    finishedTime=task.finished, abortRequestedTime=task.abort_requested, data=task.data,
                    timeout=task.timeout)
    rendered.id = task.id
    rendered.status = task.status
    rendered.retryCount = task.retry_count
    rendered.taskGroupId = task.group_id
    rendered.nodeId = task.node_id
    rendered.workerId = task.worker_id
    rendered.errors = list(task.errors) or None
    return rendered


def render_tasks(tasks: list[TaskRec]) -> list:
    return Json.dump([render_task(t) for t in tasks])


def load_tasks(body: Any) -> list[Task]:
    if body is None:
        return []
    if not isinstance(body, list):
        raise InvalidRequest("the request body must be a JSON array of tasks")
    return [load(item, Task, f"tasks[{i}]") for i, item in enumerate(body)]


class WorkResponses:
    """Handlers of the work routes; ``routes.py`` maps each to its method and path."""

    def __init__(self, work: WorkModel) -> None:
        self.work = work

    def add_work_requirement(self, request: Request, body: Any) -> Any:
        requirement = load(require_object(body), WorkRequirement, "work requirement")
        return self.work.add_work_requirement(requirement, dumped(render_work_requirement))

    def update_work_requirement(self, request: Request, body: Any) -> Any:
        requirement = load(require_object(body), WorkRequirement, "work requirement")
        return self.work.update_work_requirement(requirement, dumped(render_work_requirement))

    def work_requirement_by_id(self, request: Request, body: Any) -> Any:
        return self.work.get_work_requirement(path_param(request, "id"), dumped(render_work_requirement))

    def work_requirement_updates(self, request: Request, body: Any) -> Any:
        """``GET /work/requirements/{id}/updates``: the requirement's JSON at each change (SSE)."""
        wr_id = path_param(request, "id")
        self.work.get_work_requirement(wr_id)  # 404 before the stream starts
        return event_stream(lambda: self.work.get_work_requirement(wr_id, dumped(render_work_requirement)),
                            lambda payload: payload.get("status") in FINISHED_WR_STATUSES,
                            lambda: self.work.lock.releases)

    def work_requirement_by_name(self, request: Request, body: Any) -> Any:
        return self.work.get_work_requirement_by_name(
            path_param(request, "namespace"), path_param(request, "name"), dumped(render_work_requirement))

    def transition_work_requirement(self, request: Request, body: Any) -> Any:
        abort = bool_param(request, "abort")
        return self.work.transition_work_requirement(
            path_param(request, "id"), path_param(request, "status"), abort, dumped(render_work_requirement))

    def search_work_requirements(self, request: Request, body: Any) -> Any:
        query = request.query_params
        search = parse_search(WorkRequirementSearch, query)
        if query.get("sliced", "").lower() != "true":
            return self.work.search_work_requirements(
                search, lambda found: Json.dump([render_work_requirement_summary(wr) for wr in found]))
        return self.work.search_work_requirements(search, sliced(query, render_work_requirement_summary))

    def add_tasks(self, request: Request, body: Any) -> Any:
        return self.work.add_tasks(path_param(request, "id"), load_tasks(body), render_tasks)

    def add_tasks_by_name(self, request: Request, body: Any) -> Any:
        tasks = load_tasks(body)
        return self.work.add_tasks_by_name(path_param(request, "namespace"), path_param(request, "requirement"),
                                           path_param(request, "group"), tasks, render_tasks)

    def task_by_id(self, request: Request, body: Any) -> Any:
        return self.work.get_task(path_param(request, "id"), dumped(render_task))

    def cancel_task(self, request: Request, body: Any) -> Any:
        abort = bool_param(request, "abort")
        return self.work.cancel_task(path_param(request, "id"), abort, dumped(render_task))

    def search_tasks(self, request: Request, body: Any) -> Any:
        query = request.query_params
        return self.work.search_tasks(parse_search(TaskSearch, query), query.getlist("taskGroupIds"),
                                      sliced(query, render_task))
