"""What a work requirement's task groups and a group's new tasks must satisfy before anything changes.

Pure checks over the request's SDK objects and the records they join; each raises
InvalidRequest naming the offending field.
"""

from __future__ import annotations

from yellowdog_client.model import Task, TaskGroup, TaskTemplate, WorkRequirement

from ..errors import InvalidRequest
from ..records import GroupRec
from ..service import check_name

TASK_GROUPS_MAX = WorkRequirement.TASK_GROUPS_MAX

# A new task ready to be recorded: its body, its task type and its merged environment.
NewTask = tuple[Task, str, dict[str, str] | None]


def check_group_list(groups: list[TaskGroup], existing: dict[str, GroupRec]) -> None:
    """A work requirement's whole task-group list: new groups valid, kept groups unrenamed, names unique,
    dependencies on other groups of the list."""
    if len(groups) > TASK_GROUPS_MAX:
        raise InvalidRequest(f"a work requirement holds at most {TASK_GROUPS_MAX} task groups")
    names: set[str] = set()
    for i, group in enumerate(groups):
        where = f"taskGroups[{i}]"
        if group.id is not None:
            if group.id not in existing:
                raise InvalidRequest(f"{where}: task group {group.id} is not part of this work requirement")
            if group.name != existing[group.id].name:
                raise InvalidRequest(f"{where}: the name of task group {group.id} cannot be changed")
        else:
            check_new_group(where, group)
        if group.name in names:
            raise InvalidRequest(f"task group '{group.name}' already exists in this work requirement")
        names.add(group.name)
    for i, group in enumerate(groups):
        for dependency in (group.dependencies or []) + ([group.dependentOn] if group.dependentOn else []):
            if dependency not in names or dependency == group.name:
                raise InvalidRequest(f"taskGroups[{i}].dependencies: no other task group is named {dependency!r}")


def check_new_group(where: str, group: TaskGroup) -> None:
    check_name(f"{where}.name", group.name)
    check_name(f"{where}.tag", group.tag, required=False)
    spec = group.runSpecification
    if spec is None or not spec.taskTypes:
        raise InvalidRequest(f"{where}.runSpecification.taskTypes must name at least one task type")
    for tag in spec.workerTags or []:
        check_name(f"{where}.runSpecification.workerTags", tag)
    for namespace in spec.namespaces or []:
        check_name(f"{where}.runSpecification.namespaces", namespace)
    for key in ("minWorkers", "maxWorkers"):
        value = getattr(spec, key)
        if value is not None and value < 0:
            raise InvalidRequest(f"{where}.runSpecification.{key} must not be negative")


def check_new_tasks(group: GroupRec, bodies: list[Task]) -> list[NewTask]:
    """The tasks to add to the group, each with its task type and environment (the group's template applied)."""
    template = group.task_template or TaskTemplate()
    names: set[str] = set()
    prepared = []
    for i, body in enumerate(bodies):
        where = f"tasks[{i}]"
        check_name(f"{where}.name", body.name, required=False)
        check_name(f"{where}.tag", body.tag, required=False)
        if body.name is not None:
            if body.name in group.task_names or body.name in names:
                raise InvalidRequest(
                    f"Task names must be unique within task group: task '{body.name}' already exists "
                    f"in task group '{group.name}'")
            names.add(body.name)
        task_type = body.taskType or template.taskType
        if task_type is None:
            if len(group.run_spec.taskTypes) != 1:
                raise InvalidRequest(f"{where}.taskType is required: the task group has several task types")
            task_type = group.run_spec.taskTypes[0]
        if task_type not in group.run_spec.taskTypes:
            raise InvalidRequest(
                f"{where}.taskType {task_type!r} is not one of the task group's task types "
                f"{group.run_spec.taskTypes}")
        environment = dict(template.environment or {})
        environment.update(body.environment or {})
        for key, value in environment.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidRequest(f"{where}.environment must map strings to strings")
        prepared.append((body, task_type, environment or None))
    return prepared
