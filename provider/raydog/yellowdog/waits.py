"""Waiting for the platform: brisk polling, bounded by a timeout, stoppable.

Polls come often while a wait is young and less often as it ages: the pause is a
twentieth of the time waited so far, at least 0.1 s and at most 2 s. So a change in the
first 2 s is noticed within 0.1 s, later ones within about 5% of the time they took, and a
wait of minutes still costs one request per 2 s: a 5-minute wait makes about 200 polls.
A wait that knows its work requirement also follows the requirement's update stream
(updates.py): a change of the task groups it watches ends the pause at once, so the change
is noticed within milliseconds whatever the wait's age; the poll still decides, and where no
event comes the polls notice it as before. That is how a pool learns its head's node
(``wait_for_group_node``) and how a create sees its node's task start
(``wait_until_executing``). A task first seen EXECUTING by a poll that an event woke counts
as started only when a poll STARTED_AFTER_SECONDS later sees it EXECUTING still: the event
comes the moment the task starts, when a script that fails as it starts has not failed
yet. A poll on its own schedule takes EXECUTING as it finds it.
A transient error during a wait (no answer, 429, 5xx) is logged and the wait goes on until
its deadline; anything else ends it. ``stop_event`` (set when Terraform asks the provider to
stop) ends a wait at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

from yellowdog_client.model import TaskSearch, TaskStatus

from .core import log
from .errors import PlatformError, StoppedError, TaskFailedError, WaitTimeoutError
from .models import NodeAddress, TaskInfo
from .updates import Subscription, group_counts, sleep_unless_stopped
from .work import WorkOps, _task_info

ProgressCallback = Callable[[list[TaskInfo]], None]

POLL_MIN = 0.1  # seconds between polls, at least
POLL_MAX = 2.0  # and at most
POLL_FRACTION = 0.05  # of the time waited so far
# A task first seen EXECUTING by a poll an event woke is started once a poll this much later
# still sees it EXECUTING (see the docstring).
STARTED_AFTER_SECONDS = POLL_MIN
# A peer (head, observability node) whose task ended before its node was known: how long a wait
# for its address goes on for another group to take its place (a replacement's group appears
# within seconds: it is added right after its pool is asked for) before it fails.
PEER_GONE_GRACE_SECONDS = 30.0


def poll_interval(waited: float) -> float:
    """The pause before the next poll of a wait that has lasted ``waited`` seconds."""
    return min(POLL_MAX, max(POLL_MIN, POLL_FRACTION * waited))


def poll_until(what: str, object_id: str, check: Callable[[], tuple[bool, str | None]],
               timeout_seconds: float, stop_event: threading.Event | None = None,
               operation: str = "wait", wake: Subscription | None = None,
               recheck_in: Callable[[], float | None] | None = None) -> None:
    """Call ``check`` (returning (done, status)) until done, the timeout, or a stop. A pause
    ends early when ``wake`` (an update stream's subscription, updates.py) says what the
    wait watches has changed, and lasts at most what ``recheck_in`` says (None: no limit),
    for a check that wants to look again soon."""
    started = time.monotonic()
    deadline = started + timeout_seconds
    last_status: str | None = None
    while True:
        _raise_if_stopped(stop_event, operation, object_id)
        try:
            done, last_status = check()
        except PlatformError as err:
            if not err.transient:
                raise
            log.warning("%s: %s; still waiting", what, err)
        else:
            if done:
                return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeoutError(object_id, time.monotonic() - started, last_status, operation=operation)
        pause = min(poll_interval(time.monotonic() - started), remaining)
        soon = recheck_in() if recheck_in is not None else None
        if soon is not None:
            pause = min(pause, soon)
        if wake is None:
            sleep_unless_stopped(pause, stop_event)
        else:
            wake.wait(pause, stop_event)
        _raise_if_stopped(stop_event, operation, object_id)


class WaitOps(WorkOps):
    """Waits of ``YellowDogClient`` on tasks."""

    def wait_until_executing(self, task_ids: Sequence[str], timeout_seconds: float,
                             stop_event: threading.Event | None = None,
                             on_progress: ProgressCallback | None = None,
                             task_group_id: str | None = None, wr_id: str | None = None) -> list[TaskInfo]:
        """Wait until every task has started (EXECUTING; see the module's docstring for a task
        first seen so by a poll an update woke); returns them as last seen, in order.

        Raises TaskFailedError as soon as one ends (any terminal status, with the exit code
        and the platform's error text), WaitTimeoutError after ``timeout_seconds``, and
        StoppedError when ``stop_event`` is set. Each round costs one task search per task
        group rather than one read per task; the group is known for tasks this client added
        (or pass ``task_group_id``), else it is learnt from one task read. With ``wr_id`` the
        wait follows the work requirement's update stream. ``on_progress`` is called with
        every task's latest info when any status changes.
        """
        ids = list(dict.fromkeys(task_ids))
        latest: dict[str, TaskInfo] = {}
        executing: set[str] = set()
        first_seen_executing: dict[str, float] = {}
        groups: set[str] = {task_group_id} if task_group_id else set()
        groups.update(self._task_groups[task_id] for task_id in ids if task_id in self._task_groups)
        operation = "wait for task to execute"
        wake: Subscription | None = None  # the update stream's subscription, while the wait follows one

        def check() -> tuple[bool, str | None]:
            pending = [task_id for task_id in ids if task_id not in executing]
            seen = self._poll_tasks(pending, groups)
            now = time.monotonic()
            changed = False
            for task_id in pending:
                info = seen[task_id]
                changed |= latest.get(task_id) != info
                latest[task_id] = info
                if info.task_group_id:
                    groups.add(info.task_group_id)
                if info.status == TaskStatus.EXECUTING.name:
                    if task_id not in first_seen_executing and not (wake is not None and wake.woken):
                        executing.add(task_id)  # found on the poll's own schedule
                    elif now - first_seen_executing.setdefault(task_id, now) >= STARTED_AFTER_SECONDS:
                        executing.add(task_id)
                elif info.finished:
                    raise TaskFailedError(task_id, info.status or "UNKNOWN", info.exit_code,
                                          info.error_detail or "", operation=operation)
                else:
                    first_seen_executing.pop(task_id, None)  # not running now (its node was lost)
            if changed and on_progress is not None:
                on_progress([latest[task_id] for task_id in ids if task_id in latest])
            waiting = [task_id for task_id in ids if task_id not in executing]
            if not waiting:
                return True, TaskStatus.EXECUTING.name
            first = latest.get(waiting[0])
            return False, (first.status if first else None)

        def recheck_in() -> float | None:
            """Until the first task seen EXECUTING and not yet counted can be counted."""
            unconfirmed = [first_seen_executing[t] for t in ids if t in first_seen_executing and t not in executing]
            if not unconfirmed:
                return None
            return max(0.0, min(unconfirmed) + STARTED_AFTER_SECONDS - time.monotonic())

        def watched(payload: dict) -> tuple:
            return group_counts(payload, lambda group: group.get("id") in groups)

        if ids:
            object_id = ids[0] if len(ids) == 1 else f"{ids[0]} (+{len(ids) - 1} more)"
            with (self._updates_of(wr_id, watched) if wr_id else nullcontext()) as wake:
                poll_until(f"waiting for {len(ids)} task(s) to execute", object_id, check,
                           timeout_seconds, stop_event, operation=operation, wake=wake, recheck_in=recheck_in)
        return [latest[task_id] for task_id in ids]

    def wait_until_ended(self, task_ids: Sequence[str], timeout_seconds: float,
                         stop_event: threading.Event | None = None) -> None:
        """Wait until every task has finished, whatever its end (an aborted task's EXIT trap
        has run once it is ABORTED); WaitTimeoutError after ``timeout_seconds``."""
        ids = list(dict.fromkeys(task_ids))
        groups = {self._task_groups[task_id] for task_id in ids if task_id in self._task_groups}

        def check() -> tuple[bool, str | None]:
            seen = self._poll_tasks(ids, groups)
            waiting = [task_id for task_id in ids if not seen[task_id].finished]
            return not waiting, (seen[waiting[0]].status if waiting else None)

        if ids:
            object_id = ids[0] if len(ids) == 1 else f"{ids[0]} (+{len(ids) - 1} more)"
            poll_until(f"waiting for {len(ids)} task(s) to end", object_id, check, timeout_seconds, stop_event,
                       operation="wait for task to end")

    def wait_for_group_node(self, wr_id: str, group_tag: str, timeout_seconds: float,
                            stop_event: threading.Event | None = None,
                            tag_matches: Callable[[str], bool] | None = None,
                            gone_grace: float = PEER_GONE_GRACE_SECONDS) -> NodeAddress:
        """The address of the node running a task of the work requirement's live task group
        tagged ``group_tag`` (each node pool's group is tagged with its pool's name), or, with
        ``tag_matches``, the newest live group whose tag it accepts (a strict platform may
        give a pool the next generation of its name).

        How a worker pool learns its head's address (and a node its observability node's)
        without Terraform ordering one create after the other: the group and its task may
        not exist yet when the wait starts. Each round costs one read of the requirement
        until the group appears, then one task search of that group; one node read at the end.
        Only the private IP is read (``public_ip`` is None). When the group's tasks all end
        before one had a node (the peer's create failed), the wait goes on for ``gone_grace``
        seconds for another group to take its place, then fails (PlatformError) instead of
        waiting out the timeout for a node that will not come.
        """
        found: dict[str, object] = {}
        wanted = tag_matches or (lambda tag: tag == group_tag)

        def check() -> tuple[bool, str | None]:
            ended = found.get("ended")
            if "group" not in found and isinstance(ended, tuple) and time.monotonic() - ended[0] > gone_grace:
                raise PlatformError("wait for node", f"the task of {group_tag} ended ({ended[2]}) before its node "
                                    f"was known, and no other took its place within {gone_grace:.0f} s",
                                    object_id=str(ended[1]))
            if "group" not in found:
                wr = self._require_wr(wr_id)
                if wr.status is not None and wr.status.finished:
                    raise PlatformError("wait for node", f"the work requirement is {wr.status.name}",
                                        object_id=wr_id)
                group = next((g for g in reversed(wr.taskGroups or []) if g.tag and wanted(g.tag) and g.id
                              and not (g.status is not None and g.status.terminated)), None)
                if group is None or (isinstance(ended, tuple) and group.id == ended[1]):
                    return False, "no task group yet" if ended is None else "its task ended"
                found["group"] = group.id
                found.pop("ended", None)  # another group took its place
            group_id = str(found["group"])
            tasks = [_task_info(t) for t in self._search_tasks(TaskSearch(taskGroupId=group_id), group_id)]
            placed = next((t for t in tasks if not t.finished and (t.worker_id or t.node_id)), None)
            if placed is None:
                if tasks and all(t.finished for t in tasks):
                    # That group ended; a replacement may follow, for gone_grace seconds.
                    found["ended"] = (time.monotonic(), found.pop("group"), tasks[-1].status)
                return False, tasks[0].status if tasks else "no task yet"
            node = self._node_of(placed.worker_id or placed.node_id)  # type: ignore[attr-defined]
            private_ip = node.details.privateIpAddress if node.details else None
            if not private_ip:
                return False, "no private IP yet"
            found["address"] = NodeAddress(node_id=node.id, private_ip=private_ip, public_ip=None)
            return True, placed.status

        def watched(payload: dict) -> tuple:
            return group_counts(payload, lambda group: bool(group.get("tag")) and wanted(group["tag"]))

        with self._updates_of(wr_id, watched) as wake:
            poll_until(f"waiting for the node of {group_tag}", group_tag, check, timeout_seconds, stop_event,
                       operation="wait for node", wake=wake)
        return found["address"]  # type: ignore[return-value]

    @contextmanager
    def _updates_of(self, wr_id: str, key: Callable[[dict], Hashable]) -> Iterator[Subscription | None]:
        """A subscription to the work requirement's update stream, or None for a client without one."""
        if self._updates is None:
            yield None
            return
        with self._updates.subscribe(wr_id, key) as subscription:
            yield subscription

    def _poll_tasks(self, task_ids: list[str], groups: Iterable[str]) -> dict[str, TaskInfo]:
        """The current info of each task: one search per known group, reads for the rest."""
        found: dict[str, TaskInfo] = {}
        wanted = set(task_ids)
        if len(wanted) > 1:
            if not groups:  # tasks waited for together are usually one group's: learn it from one
                first = self._call("read task", task_ids[0],
                                   lambda: self._sdk.work_client.get_task_by_id(task_ids[0]))
                found[task_ids[0]] = _task_info(first)
                groups = {first.taskGroupId} if first.taskGroupId else set()
            for group_id in sorted(groups):
                for task in self._search_tasks(TaskSearch(taskGroupId=group_id), group_id):
                    if task.id in wanted:
                        found[task.id] = _task_info(task)
        for task_id in task_ids:
            if task_id not in found:
                task = self._call("read task", task_id, lambda: self._sdk.work_client.get_task_by_id(task_id))
                found[task_id] = _task_info(task)
        return found


def _raise_if_stopped(stop_event: threading.Event | None, operation: str, object_id: str) -> None:
    if stop_event is not None and stop_event.is_set():
        raise StoppedError(operation, object_id)
