"""Ending a node pool's task group in one request, and waiting for its tasks to end.

The API has no task-group endpoint (reference §1): the only request that ends every task of
one group is an update of the work requirement whose group list leaves that group out. The
sandbox then cancels the group's waiting tasks and aborts its running ones (SIGTERM, so a
node task's EXIT trap runs ``ray stop``), however many there are; what YellowDog itself does
with a group left out is not documented [I]. So the answer is checked: a platform that keeps
the group (its answer still lists it) is told apart, and the caller falls back to
cancelling the group's tasks one by one.

The update replaces the whole group list, so it runs under the work requirement's lock,
like an append (work.py), and drops asked for together share one read and one update: the
pools of one destroy arrive within milliseconds of each other, and each waits until
``DROP_GATHER_SECONDS`` after the first of them before one of them sends the update for all.
"""

from __future__ import annotations

import threading
import time

from yellowdog_client.model import TaskSearch

from .core import log
from .errors import PlatformError, StoppedError, WaitTimeoutError
from .retry import lookup_patiently
from .work import UNFINISHED_TASK_STATUSES, WorkOps, _GroupRequest
from .wr_json import groups_of, wr_finished

# How long the first of several drops waits for the others before it updates the requirement.
DROP_GATHER_SECONDS = 0.1
# Pauses while waiting for a dropped group's tasks to end: the first read after 0.1 s (a
# simulated task ends at once), then twice the time waited, at most 1 s (an EXIT trap that
# stops Ray takes a second or two: a handful of reads, not one per 0.1 s).
END_POLL_FIRST = 0.1
END_POLL_MAX = 1.0


class GroupEndOps(WorkOps):
    """``end_task_group`` and ``wait_until_group_ended`` of ``YellowDogClient``."""

    def end_task_group(self, wr_id: str, task_group_id: str) -> bool:
        """Drop the group from the work requirement, so the platform ends its tasks.

        True when the platform's answer no longer lists the group (or the requirement has
        finished: its tasks have ended with it); False when it still lists it, and the caller
        must cancel the group's tasks itself. PlatformError when the update fails.
        """
        request = _DropRequest(task_group_id)
        with self._pending_guard:
            pending = self._pending_drops.setdefault(wr_id, [])
            # The drops of one destroy gather until the first one's deadline, then go together.
            request.deadline = pending[0].deadline if pending else time.monotonic() + DROP_GATHER_SECONDS
            pending.append(request)
        time.sleep(max(request.deadline - time.monotonic(), 0.0))
        self._answer_in_batch(wr_id, self._pending_drops, request, self._drop_groups, "end task group")
        return bool(request.outcome())

    def _drop_groups(self, wr_id: str, batch: list[_DropRequest]) -> None:
        """One read and one update for every drop of ``batch`` (the caller holds the lock), as
        JSON like an append (wr_json.py)."""
        wr = self._wr_json_or_none(wr_id)
        if wr is None or wr_finished(wr):
            for request in batch:
                request.resolve(True)  # a finished requirement's tasks have all ended
            return
        dropping = {request.group_id for request in batch}
        listed = {group.get("id") for group in groups_of(wr)}
        for request in batch:
            if request.group_id not in listed:
                request.resolve(True)  # dropped already (a retried delete)
        if not dropping & listed:
            return
        body = {**wr, "taskGroups": [group for group in groups_of(wr) if group.get("id") not in dropping]}
        log.info("ending task group(s) %s of work requirement %s", ", ".join(sorted(dropping & listed)), wr_id)
        try:
            answer = self._put_wr_json("end task group", body)
        except PlatformError as err:
            if not err.outcome_unknown:
                raise
            log.warning("end task group(s) in %s: %s; reading the requirement back", wr_id, err)
            answer = lookup_patiently(lambda: self._wr_json(wr_id))
        kept = {group.get("id") for group in groups_of(answer)}
        for request in batch:
            if not request.done:
                request.resolve(request.group_id not in kept)

    def wait_until_group_ended(self, task_group_id: str, timeout_seconds: float,
                               stop_event: threading.Event | None = None) -> None:
        """Wait until no task of the group is unfinished (an aborted task is ABORTED once its
        EXIT trap has run): one task search per poll, the first after ``END_POLL_FIRST``;
        WaitTimeoutError after ``timeout_seconds``."""
        started = time.monotonic()
        search = TaskSearch(taskGroupId=task_group_id, statuses=UNFINISHED_TASK_STATUSES)
        pause = END_POLL_FIRST
        while True:
            remaining = started + timeout_seconds - time.monotonic()
            if stop_event is not None and stop_event.wait(max(min(pause, remaining), 0)):
                raise StoppedError("wait for task to end", task_group_id)
            if stop_event is None:
                time.sleep(max(min(pause, remaining), 0))
            try:
                left = next(iter(self._search_tasks(search, task_group_id)), None)
            except PlatformError as err:
                if not err.transient:
                    raise
                log.warning("task group %s: %s; still waiting for its tasks to end", task_group_id, err)
                left = True
            if left is None:
                return
            waited = time.monotonic() - started
            if waited >= timeout_seconds:
                raise WaitTimeoutError(task_group_id, waited, getattr(left, "status", None),
                                       operation="wait for task to end")
            pause = min(END_POLL_MAX, max(END_POLL_FIRST, waited))


class _DropRequest(_GroupRequest):
    """One caller's end_task_group, answered (True: dropped) by whichever caller's batch sends it."""

    def __init__(self, group_id: str) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.group_id = group_id
        self.deadline = 0.0
