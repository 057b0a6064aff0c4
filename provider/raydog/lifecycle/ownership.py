"""The ownership journal: the tokens this configuration's creates put on platform objects.

A create records its token here *before* it sends the request, so whatever becomes of the
request or of the process (a lost reply, Ctrl-C, ``kill -9`` of Terraform or of the
provider), the next run in the same working directory can prove the object is its own:
the token on the live object is one it issued (see raydog/yellowdog/ownership.py). A
same-named object made from any other working directory carries a token this journal
never held, so it is never adopted, changed or removed.

The journal lives in Terraform's data directory (``TF_DATA_DIR``, else ``.terraform`` in
the working directory Terraform runs the provider in), which is per working directory and
never committed. A run elsewhere (another CI machine) cannot prove a killed run's objects
its own: it stops with an error naming them and how to import them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger("raydog.ownership")

FILE_NAME = "raydog-ownership.json"
KEEP_ENTRIES = 5000  # the oldest go first (when the file holds twice as many); one entry per create


class OwnershipJournal:
    """Tokens issued for (kind, namespace, name), kept in one small file: one JSON object a line.

    A record appends its line and fsyncs, so its cost does not grow with the journal; records
    made at the same moment (the pools of one apply) share one write and one fsync, the first
    caller writing for every one waiting. Reads keep what they parsed and read only what was
    appended since (by this process or another). A journal in the older form, one JSON list,
    is read as it is and rewritten a line per entry on the first record.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()  # the index, the lines read and the queue
        self._flush_lock = threading.Lock()  # one writer at a time; the others wait for its fsync
        self._tokens: dict[tuple[str, str, str], set[str]] = {}
        self._lines: list[str] = []  # every entry read from the file, as written, oldest first
        self._offset = 0  # bytes of the file read so far
        self._legacy = False  # the file is one JSON list (the older form)
        self._torn = False  # the file ends in part of a line (a write cut short by a crash)
        self._queued: list[str] = []  # lines recorded but not yet written
        self._recorded = 0  # lines ever queued; _written of them are on disk (or failed to be)
        self._written = 0

    @classmethod
    def for_working_directory(cls) -> "OwnershipJournal":
        data_dir = Path(os.environ.get("TF_DATA_DIR") or ".terraform")
        return cls(data_dir.absolute() / FILE_NAME)

    def issue(self, kind: str, namespace: str, name: str) -> str:
        """A fresh token for a create of ``kind`` ``namespace/name``, recorded before it is returned."""
        from raydog.yellowdog import new_owner_token

        token = new_owner_token()
        self.record(kind, namespace, name, token)
        return token

    def record(self, kind: str, namespace: str, name: str, token: str) -> None:
        """Remember ``token`` as ours (a create about to be sent, or an import taking ownership);
        returns once it is on disk (or could not be written: then this process alone remembers it)."""
        entry = {"kind": kind, "namespace": namespace, "name": name, "token": token, "time": int(time.time())}
        with self._lock:
            self._tokens.setdefault((kind, namespace, name), set()).add(token)
            self._queued.append(json.dumps(entry, separators=(",", ":")))
            self._recorded += 1
            mine = self._recorded
        with self._flush_lock:
            if self._written >= mine:
                return  # another caller's write carried this entry
            with self._lock:
                self._refresh()
                batch, self._queued = self._queued, []
                upto = self._recorded
            self._append(batch)
            self._written = upto

    def tokens(self, kind: str, namespace: str, name: str) -> frozenset[str]:
        """Every token this working directory issued or took over for that object."""
        with self._lock:
            self._refresh()
            return frozenset(self._tokens.get((kind, namespace, name), ()))

    def _refresh(self) -> None:
        """Read what was appended to the file since the last read (under ``_lock``)."""
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as journal:
                size = os.fstat(journal.fileno()).st_size
                if size == self._offset:
                    return
                if size < self._offset:  # replaced by a shorter file (trimmed): read it afresh
                    self._offset, self._lines, self._legacy, self._torn = 0, [], False, False
                journal.seek(self._offset)
                data = journal.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read the ownership journal %s (%s)", self.path, exc)
            return
        if self._offset == 0 and data.lstrip().startswith(b"["):
            self._offset = len(data)
            self._legacy = True
            self._index(_legacy_lines(data, self.path))
            return
        complete = data[:data.rfind(b"\n") + 1]
        self._torn = len(complete) < len(data)
        self._offset += len(complete)
        self._index(complete.decode("utf-8", "replace").splitlines())

    def _index(self, lines: list[str]) -> None:
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash
            if isinstance(entry, dict) and isinstance(entry.get("token"), str):
                key = (entry.get("kind"), entry.get("namespace"), entry.get("name"))
                self._tokens.setdefault(key, set()).add(entry["token"])  # type: ignore[arg-type]
                self._lines.append(line)

    def _append(self, batch: list[str]) -> None:
        """Append ``batch`` (one write, one fsync); the older form, or a journal past twice
        ``KEEP_ENTRIES``, is rewritten instead. A warning when it cannot be written."""
        if self.path is None or not batch:
            return
        text = ("\n" if self._torn else "") + "".join(line + "\n" for line in batch)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._legacy or len(self._lines) + len(batch) > 2 * KEEP_ENTRIES:
                self._rewrite([*self._lines, *batch][-KEEP_ENTRIES:])
                return
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot write the ownership journal %s (%s): objects of a killed run will not be "
                        "recognised as this configuration's", self.path, exc)

    def _rewrite(self, lines: list[str]) -> None:
        """Replace the file with ``lines``, atomically and durably."""
        assert self.path is not None
        import tempfile  # here: its import (shutil, bz2, lzma, random) would cost every provider launch

        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".raydog-ownership-")
        with os.fdopen(fd, "w") as out:
            out.write("".join(line + "\n" for line in lines))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        with self._lock:  # read afresh next time: the new file holds every line kept
            self._offset, self._lines, self._legacy, self._torn = 0, [], False, False


def _legacy_lines(data: bytes, path: Path) -> list[str]:
    """The entries of a journal in the older form (one JSON list), a line each."""
    try:
        entries = json.loads(data)
    except ValueError as exc:
        log.warning("cannot read the ownership journal %s (%s); starting a new one", path, exc)
        return []
    if not isinstance(entries, list):
        return []
    return [json.dumps(e, separators=(",", ":")) for e in entries if isinstance(e, dict)]
