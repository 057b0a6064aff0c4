"""Work requirements, task groups and tasks: idempotent, verified operations.

A cluster is one work requirement; each node resource appends one task group to it and
adds one bash task per node. Creates are idempotent by unique name (see
``retry.create_or_adopt``); the task-group append is a read-modify-write of the whole
work requirement, serialised per work requirement in this process and verified by
reading it back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from datetime import timedelta

from yellowdog_client.model import (
    RunSpecification,
    TaskTemplate,
    Task,
    TaskGroup,
    TaskSearch,
    TaskStatus,
    WorkRequirement,
    WorkRequirementSearch,
    WorkRequirementStatus,
)

from .core import log
from .errors import OwnedElsewhereError, PlatformError
from .models import TaskGroupInfo, TaskGroupSpec, TaskInfo, TaskSpec, WorkRequirementInfo
from .ownership import OWNER_GROUP, is_owner_group, new_owner_token
from .retry import create_or_adopt, lookup_patiently
from .wr_json import (WorkRequirementJson, group_info, group_json, group_named, group_worker_tags, groups_of,
                      wr_finished, wr_info)

TASK_TYPE = "bash"
GROUP_APPEND_ATTEMPTS = 5
TASK_ADD_ATTEMPTS = 3
LIVE_WR_STATUSES = [status for status in WorkRequirementStatus if not status.finished]
UNFINISHED_TASK_STATUSES = [status for status in TaskStatus if not status.finished]


class WorkOps(WorkRequirementJson):
    """Work requirement, task group and task operations of ``YellowDogClient``."""

    # -- work requirements -------------------------------------------------------------

    def create_work_requirement(self, namespace: str, name: str, tag: str | None = None, priority: float = 0.0,
                                owner_token: str | None = None,
                                proven_tokens: Collection[str] = ()) -> WorkRequirementInfo:
        """Create the work requirement ``namespace/name`` carrying ``owner_token`` in its owner marker.

        A live requirement of that name is adopted only when its marker carries ``owner_token``
        or one of ``proven_tokens`` (a reply lost after the platform committed this create, or
        a run that was killed): anything else is OwnedElsewhereError, never an adoption.
        """
        label = f"{namespace}/{name}"
        token = owner_token or new_owner_token()
        accepted = {token, *proven_tokens}

        def create() -> WorkRequirementInfo:
            body = WorkRequirement(namespace=namespace, name=name, tag=tag, priority=priority,
                                   taskGroups=[_owner_group(token, namespace)])
            created = self._call("create work requirement", label,
                                 lambda: self._sdk.work_client.add_work_requirement(body))
            log.info("created work requirement %s as %s", label, created.id)
            return _wr_info(created)

        def find_live() -> WorkRequirementInfo | None:
            found = self.find_work_requirement(namespace, name)
            if found is None or found.finished:
                return None
            if found.owner_token not in accepted:
                raise OwnedElsewhereError("create work requirement", label, found.id, "work requirement")
            return found if found.tag == tag else self.set_work_requirement_tag(found.id, tag)

        try:
            return create_or_adopt(f"create work requirement {label}", create, find_live)
        except OwnedElsewhereError:
            raise
        except PlatformError as err:
            if err.name_taken:
                raise PlatformError(
                    "create work requirement", f"the name is taken by a finished work requirement and "
                    f"YellowDog keeps names unique in a namespace; choose another name ({err.message})",
                    status=err.status, object_id=label, error_type=err.error_type) from err
            raise

    def mark_owner(self, wr_id: str, token: str) -> WorkRequirementInfo:
        """Give a requirement that has no owner marker (one RayDog made, being imported) one with ``token``."""
        with self._wr_locks.hold(wr_id):
            wr = self._require_wr(wr_id)
            current = _wr_info(wr)
            if current.owner_token is not None:
                return current
            wr.taskGroups = [*(wr.taskGroups or []), _owner_group(token, wr.namespace)]
            log.info("marking work requirement %s as owned by this configuration", wr_id)
            return _wr_info(self._call("update work requirement", wr_id,
                                       lambda: self._sdk.work_client.update_work_requirement(wr)))

    def get_work_requirement(self, wr_id: str) -> WorkRequirementInfo | None:
        """The work requirement, or None if the platform has no such id (remembered for
        ``recent_work_requirement``)."""
        read_at = time.monotonic()
        wr = self._wr_json_or_none(wr_id)  # as JSON: no SDK model conversion of every group
        info = None if wr is None else wr_info(wr)
        self._recent_wrs[wr_id] = (read_at, info)
        return info

    def recent_work_requirement(self, wr_id: str, max_age: float = 2.0) -> WorkRequirementInfo | None:
        """The work requirement as read at most ``max_age`` seconds ago by this client, else read now.

        Every pool created in one apply checks its cluster before provisioning; they arrive
        together, so one read answers them all instead of one read per pool (and the read
        their plan made a moment before answers them too).
        """
        with self._recent_guard.hold(wr_id):
            seen = self._recent_wrs.get(wr_id)
            if seen is not None and time.monotonic() - seen[0] <= max_age:
                return seen[1]  # type: ignore[return-value]
            return self.get_work_requirement(wr_id)

    def find_work_requirement(self, namespace: str, name: str) -> WorkRequirementInfo | None:
        """The work requirement of that name: the live one if there is one, else the last finished one."""
        label = f"{namespace}/{name}"
        wr = self._get_or_none("read work requirement", label,
                               lambda: self._sdk.work_client.get_work_requirement_by_name(namespace, name))
        if wr is None:
            return None
        if wr.status is not None and wr.status.finished:
            # Should the platform ever keep a finished requirement beside a live one of the same name.
            search = WorkRequirementSearch(namespaces=[namespace], name=name, statuses=LIVE_WR_STATUSES)
            for summary in self._all_pages("search work requirements", label, lambda ref: (
                    self._sdk.work_client.get_work_requirements(search).slice(ref))):
                if summary.name == name and summary.namespace == namespace and summary.id != wr.id:
                    return self.get_work_requirement(summary.id) or _wr_info(wr)
        return _wr_info(wr)

    def set_work_requirement_tag(self, wr_id: str, tag: str | None) -> WorkRequirementInfo:
        """Change the work requirement's tag (a read-modify-write, so under its lock)."""
        with self._wr_locks.hold(wr_id):
            wr = self._require_wr(wr_id)
            if wr.tag == tag:
                return _wr_info(wr)
            wr.tag = tag
            log.info("setting the tag of work requirement %s", wr_id)
            updated = self._call("update work requirement", wr_id,
                                 lambda: self._sdk.work_client.update_work_requirement(wr))
            return _wr_info(updated)

    def cancel_work_requirement(self, wr_id: str) -> WorkRequirementInfo | None:
        """Cancel with abort, so running tasks get SIGTERM. Finished or missing is success.

        A requirement already CANCELLING is cancelled again with abort, as the YellowDog
        CLI does, so tasks left running by a cancel without abort are aborted too.
        """
        with self._wr_locks.hold(wr_id):
            wr = self._read_wr(wr_id)
            if wr is None or (wr.status is not None and wr.status.finished):
                return None if wr is None else _wr_info(wr)
            log.info("cancelling work requirement %s (abort)", wr_id)
            try:
                cancelled = self._call("cancel work requirement", wr_id, lambda: (
                    self._sdk.work_client.cancel_work_requirement_by_id(wr_id, abort=True)))
                return _wr_info(cancelled)
            except PlatformError as err:
                current = lookup_patiently(lambda: self._read_wr(wr_id))
                if current is None or current.status is WorkRequirementStatus.CANCELLING or (
                        current.status is not None and current.status.finished):
                    log.info("work requirement %s is %s: cancel done (%s)", wr_id,
                             current.status if current else "gone", err)
                    return None if current is None else _wr_info(current)
                raise

    # -- task groups ---------------------------------------------------------------------

    def ensure_task_group(self, wr_id: str, spec: TaskGroupSpec) -> TaskGroupInfo:
        """The task group ``spec.name`` of the work requirement, appended if it is not there.

        A live group of that name is adopted; a finished one is an error (names are unique
        in a work requirement, so the caller must pick a new one). The append replaces the
        whole group list, so it runs under the work requirement's lock and is verified in
        the requirement the platform answers with (read back only when that lacks the
        group); a group lost to another client's concurrent update is appended again, at
        most ``GROUP_APPEND_ATTEMPTS`` times.

        Appends wait for each other on that lock, so they are made in batches: whichever
        caller gets the lock adds every group asked for meanwhile in one read and one
        update, and each caller gets its own group (or its own error). A hundred pools
        created ten at a time then cost a few dozen updates of the requirement, not a
        hundred, each carrying the whole growing group list.
        """
        request = _GroupRequest(spec)
        with self._pending_guard:
            self._pending_groups.setdefault(wr_id, []).append(request)
        self._answer_in_batch(wr_id, self._pending_groups, request, self._ensure_groups, "add task group")
        return request.outcome()

    def _answer_in_batch(self, wr_id: str, pending: dict[str, list], request: _GroupRequest,
                         send: Callable[[str, list], None], operation: str) -> None:
        """Under the requirement's lock, unless another caller's batch has answered ``request``:
        take every request pending for ``wr_id`` and ``send`` them as one batch. Anything
        unexpected it raises answers every request of the batch, and is raised."""
        with self._wr_locks.hold(wr_id):
            if request.done:
                return
            with self._pending_guard:
                batch = pending.pop(wr_id, [])
            try:
                send(wr_id, batch)
            except BaseException as exc:
                for unanswered in batch:
                    if not unanswered.done:
                        unanswered.fail(exc if isinstance(exc, Exception) else PlatformError(
                            operation, f"interrupted ({type(exc).__name__})", object_id=wr_id))
                raise

    def _ensure_groups(self, wr_id: str, batch: list[_GroupRequest]) -> None:
        """Answer every request of ``batch`` (the caller holds the requirement's lock)."""
        remaining = list(batch)
        try:
            for attempt in range(1, GROUP_APPEND_ATTEMPTS + 1):
                wr = self._wr_json(wr_id)
                if wr_finished(wr):
                    raise PlatformError("add task group", f"the work requirement is {wr.get('status')}; "
                                        f"no task group can be added to it", object_id=wr_id)
                to_add: list[_GroupRequest] = []
                for request in remaining:
                    existing = group_named(wr, request.spec.name)
                    if existing is not None:
                        try:
                            request.resolve(_adoptable_group(wr_id, existing, request.spec))
                        except PlatformError as err:
                            request.fail(err)
                    elif all(other.spec.name != request.spec.name for other in to_add):
                        to_add.append(request)  # a second request for one name adopts the first's group
                remaining = [request for request in remaining if not request.done]
                if not remaining:
                    return
                try:
                    updated = self._append_groups(wr, [request.spec for request in to_add], attempt)
                except PlatformError as err:
                    if len(to_add) == 1:
                        to_add[0].fail(err)
                        remaining = [request for request in remaining if not request.done]
                        if not remaining:
                            return
                        continue
                    # Refused, but for which group? Add them one by one so only that one fails.
                    log.warning("adding %d task groups to %s at once was refused (%s); adding them one by one",
                                len(to_add), wr_id, err)
                    for request in remaining:
                        self._ensure_groups(wr_id, [request])
                    return
                if updated is not None:
                    self._settle_added(wr_id, to_add, updated)
                remaining = [request for request in remaining if not request.done]
                if not remaining:
                    return
        except PlatformError as err:
            for request in remaining:
                if not request.done:
                    request.fail(err)
            return
        for request in remaining:
            request.fail(PlatformError("add task group", f"task group {request.spec.name!r} was not kept after "
                                       f"{GROUP_APPEND_ATTEMPTS} attempts: another client keeps replacing the work "
                                       f"requirement's task groups", object_id=wr_id))

    def _settle_added(self, wr_id: str, added: list[_GroupRequest], updated: dict) -> None:
        """Answer the appended requests from the update's answer, or from a read-back for any
        it lacks; a group in neither was lost to a concurrent update and is appended again."""
        for request in added:
            group = group_named(updated, request.spec.name)
            if group is not None and group.get("id"):
                request.resolve(group_info(group))
        missing = [request for request in added if not request.done]
        if not missing:
            return
        current = lookup_patiently(lambda: self._wr_json(wr_id))
        for request in missing:
            group = group_named(current, request.spec.name)
            if group is not None and group.get("id"):
                request.resolve(group_info(group))
            else:
                log.warning("task group %s vanished from %s after the update (a concurrent update "
                            "replaced the group list); appending it again", request.spec.name, wr_id)

    def _append_groups(self, wr: dict, specs: list[TaskGroupSpec], attempt: int) -> dict | None:
        """PUT the requirement (as read, JSON: see wr_json) with the groups appended and return
        the platform's answer; None if the answer was lost or a group refused as a duplicate
        (the caller reads the requirement again to find out what happened)."""
        names = ", ".join(spec.name for spec in specs)
        body = {**wr, "taskGroups": groups_of(wr) + [group_json(_new_group(spec)) for spec in specs]}
        log.info("adding task group(s) %s to work requirement %s (attempt %d)", names, wr.get("id"), attempt)
        try:
            return self._put_wr_json("add task group", body)
        except PlatformError as err:
            if not (err.outcome_unknown or err.name_taken):
                raise
            log.warning("add task group(s) %s to %s: %s; reading the requirement back", names, wr.get("id"), err)
            return None

    def find_pool_group(self, namespace: str, worker_tag: str,
                        wr_id: str | None = None) -> tuple[WorkRequirementInfo, TaskGroupInfo, timedelta | None] | None:
        """The live work requirement and unfinished task group whose tasks run on ``worker_tag``,
        with the group's task timeout. Used by import, which starts from a worker pool id.

        Searches the namespace's live work requirements unless ``wr_id`` names the one to look in.
        """
        if wr_id is not None:
            candidates = [wr_id]
        else:
            search = WorkRequirementSearch(namespaces=[namespace], statuses=LIVE_WR_STATUSES)
            candidates = [summary.id for summary in self._all_pages("search work requirements", namespace, lambda ref: (
                self._sdk.work_client.get_work_requirements(search).slice(ref)))]
        for candidate in candidates:
            wr = self._read_wr(candidate)
            if wr is None or (wr.status is not None and wr.status.finished):
                continue
            for group in reversed(wr.taskGroups or []):
                spec = group.runSpecification
                if spec and worker_tag in (spec.workerTags or []) and not (group.status and group.status.terminated):
                    return _wr_info(wr), _tg_info(group), spec.taskTimeout
        return None

    # -- tasks -----------------------------------------------------------------------------

    def add_tasks(self, task_group_id: str, tasks: list[TaskSpec]) -> list[TaskInfo]:
        """Add bash tasks to the group; returns them in the order given.

        Idempotent by task name: if the add gets no answer or is refused because a name is
        taken, the group's tasks are listed and only the missing names are added again.
        Tasks that already existed are returned as they are (possibly finished).
        """
        names = [task.name for task in tasks]
        if len(set(names)) != len(names) or not all(names):
            raise ValueError("add_tasks: every task needs a name, unique within the call")
        done: dict[str, TaskInfo] = {}
        pending = list(tasks)
        last_error: PlatformError | None = None
        for _ in range(TASK_ADD_ATTEMPTS):
            if not pending:
                break
            log.info("adding %d task(s) to task group %s: %s", len(pending), task_group_id,
                     ", ".join(task.name for task in pending))
            body = [_new_task(task) for task in pending]
            try:
                created = self._call("add tasks", task_group_id, lambda: (
                    self._sdk.work_client.add_tasks_to_task_group_by_id(task_group_id, body)))
                done.update((info.name, info) for info in map(_task_info, created) if info.name)
                pending = [task for task in pending if task.name not in done]
                continue
            except PlatformError as err:
                if not (err.outcome_unknown or err.name_taken):
                    raise
                last_error = err
                log.warning("add tasks to %s: %s; listing the group to add only what is missing",
                            task_group_id, err)
            wanted = {task.name for task in pending}
            listed = lookup_patiently(lambda: self.list_tasks(task_group_id, include_finished=True))
            done.update((info.name, info) for info in listed if info.name in wanted)
            still = [task for task in pending if task.name not in done]
            if last_error.name_taken and len(still) == len(pending):
                raise last_error
            pending = still
        if pending:
            raise last_error or PlatformError("add tasks", "the platform did not add every task",
                                              object_id=task_group_id)
        self._task_groups.update((info.id, info.task_group_id or task_group_id) for info in done.values())
        return [done[name] for name in names]

    def list_tasks(self, task_group_id: str, include_finished: bool = False) -> list[TaskInfo]:
        """The group's tasks (unfinished only unless ``include_finished``), every page."""
        search = TaskSearch(taskGroupId=task_group_id,
                            statuses=None if include_finished else UNFINISHED_TASK_STATUSES)
        return [_task_info(task) for task in self._search_tasks(search, task_group_id)]

    def get_task(self, task_id: str) -> TaskInfo | None:
        """The task, or None if the platform has no such id."""
        task = self._read_task(task_id)
        return None if task is None else _task_info(task)

    def cancel_task(self, task_id: str, abort: bool = True) -> TaskInfo | None:
        """Cancel a task (abort: SIGTERM it if it runs). Finished or missing is success.

        The cancel is asked for at once; only when the platform refuses it is the task read,
        to tell "already finished or gone" (success) from a real failure.
        """
        log.info("cancelling task %s (abort=%s)", task_id, abort)
        try:
            return _task_info(self._call("cancel task", task_id,
                                         lambda: self._sdk.work_client.cancel_task_by_id(task_id, abort)))
        except PlatformError:
            current = lookup_patiently(lambda: self._read_task(task_id))
            if current is None or (current.status is not None and current.status.finished):
                return None if current is None else _task_info(current)
            raise

    # -- reads shared with waits -------------------------------------------------------------

    def _require_wr(self, wr_id: str) -> WorkRequirement:
        return self._call("read work requirement", wr_id,
                          lambda: self._sdk.work_client.get_work_requirement_by_id(wr_id))

    def _read_wr(self, wr_id: str) -> WorkRequirement | None:
        return self._get_or_none("read work requirement", wr_id,
                                 lambda: self._sdk.work_client.get_work_requirement_by_id(wr_id))

    def _read_task(self, task_id: str) -> Task | None:
        return self._get_or_none("read task", task_id, lambda: self._sdk.work_client.get_task_by_id(task_id))

    def _search_tasks(self, search: TaskSearch, object_id: str):
        return self._all_pages("search tasks", object_id,
                               lambda ref: self._sdk.work_client.find_tasks_slice(search, ref))


class _GroupRequest:
    """One caller's ensure_task_group, answered by whichever caller's batch adds it."""

    def __init__(self, spec: TaskGroupSpec) -> None:
        self.spec = spec
        self.done = False
        self._info: TaskGroupInfo | None = None
        self._error: Exception | None = None

    def resolve(self, info: TaskGroupInfo) -> None:
        self._info, self.done = info, True

    def fail(self, error: Exception) -> None:
        self._error, self.done = error, True

    def outcome(self) -> TaskGroupInfo:
        if self._error is not None:
            raise self._error
        assert self._info is not None
        return self._info


def _adoptable_group(wr_id: str, group: dict, spec: TaskGroupSpec) -> TaskGroupInfo:
    info = group_info(group)
    if info.finished:
        raise PlatformError("add task group", f"the name {spec.name!r} is taken by a task group that "
                            f"is {info.status}; use a new group name", object_id=wr_id)
    tags = group_worker_tags(group)
    if tags and spec.worker_tag not in tags:
        raise PlatformError("add task group", f"task group {spec.name!r} already exists for worker "
                            f"tag(s) {', '.join(tags)}, not {spec.worker_tag}", object_id=wr_id)
    log.info("task group %s already in work requirement %s as %s: adopting it", spec.name, wr_id, info.id)
    return info


def _new_group(spec: TaskGroupSpec) -> TaskGroup:
    return TaskGroup(
        name=spec.name,
        tag=spec.tag,
        priority=spec.priority,
        finishIfAnyTaskFailed=spec.finish_if_any_task_failed,
        finishIfAllTasksFinished=spec.finish_if_all_tasks_finished,
        runSpecification=RunSpecification(
            taskTypes=[TASK_TYPE],
            workerTags=[spec.worker_tag],
            namespaces=[spec.namespace],
            taskTimeout=spec.task_timeout,
        ),
        taskTemplate=None if spec.task_template is None else TaskTemplate(
            taskType=TASK_TYPE, taskData=spec.task_template.task_data,
            environment=dict(spec.task_template.environment) or None),
    )


def _new_task(spec: TaskSpec) -> Task:
    # The agent runs the task type's command with the arguments: "/bin/bash taskdata.txt".
    return Task(name=spec.name, tag=spec.tag, taskType=TASK_TYPE, taskData=spec.task_data,
                arguments=["taskdata.txt"], environment=dict(spec.environment) or None, timeout=spec.timeout)


def _owner_group(token: str, namespace: str) -> TaskGroup:
    """The owner marker: a task group that holds no task, runs on no node and never finishes."""
    return _new_group(TaskGroupSpec(name=OWNER_GROUP, worker_tag=token, namespace=namespace, tag=token))


def _wr_info(wr: WorkRequirement) -> WorkRequirementInfo:
    return WorkRequirementInfo(
        id=wr.id,
        namespace=wr.namespace,
        name=wr.name,
        tag=wr.tag,
        status=_name(wr.status),
        finished=bool(wr.status is not None and wr.status.finished),
        task_groups=tuple(_tg_info(group) for group in wr.taskGroups or [] if not is_owner_group(group.name)),
        owner_token=next((group.tag for group in wr.taskGroups or [] if is_owner_group(group.name)), None),
    )


def _tg_info(group: TaskGroup) -> TaskGroupInfo:
    return TaskGroupInfo(id=group.id, name=group.name, status=_name(group.status),
                         finished=bool(group.status is not None and group.status.terminated))


def _task_info(task: Task) -> TaskInfo:
    errors = task.errors or []
    exit_codes = [error.processExitCode for error in errors if error.processExitCode is not None]
    detail = "\n".join(error.error for error in errors if error.error)
    return TaskInfo(
        id=task.id,
        name=task.name,
        status=_name(task.status),
        finished=bool(task.status is not None and task.status.finished),
        task_group_id=task.taskGroupId,
        node_id=task.nodeId,
        worker_id=task.workerId,
        exit_code=exit_codes[-1] if exit_codes else None,
        error_detail=detail or None,
        environment=dict(task.environment or {}),
        task_data=task.taskData,
    )


def _name(status) -> str | None:
    return None if status is None else status.name
