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
KEEP_ENTRIES = 5000  # the oldest go first; one entry per create


class OwnershipJournal:
    """Tokens issued for (kind, namespace, name), kept in one small JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._memory: list[dict] = []  # used when the journal cannot be written

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
        """Remember ``token`` as ours (a create about to be sent, or an import taking ownership)."""
        entry = {"kind": kind, "namespace": namespace, "name": name, "token": token, "time": int(time.time())}
        with self._lock:
            entries = self._read()
            entries.append(entry)
            if not self._write(entries[-KEEP_ENTRIES:]):
                self._memory.append(entry)

    def tokens(self, kind: str, namespace: str, name: str) -> frozenset[str]:
        """Every token this working directory issued or took over for that object."""
        with self._lock:
            return frozenset(e["token"] for e in [*self._read(), *self._memory]
                             if (e.get("kind"), e.get("namespace"), e.get("name")) == (kind, namespace, name))

    def _read(self) -> list[dict]:
        if self.path is None:
            return []
        try:
            entries = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("cannot read the ownership journal %s (%s); starting a new one", self.path, exc)
            return []
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    def _write(self, entries: list[dict]) -> bool:
        """Replace the file atomically and durably; False (with a warning) when it cannot be written."""
        if self.path is None:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            import tempfile  # here: its import (shutil, bz2, lzma, random) would cost every provider launch

            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".raydog-ownership-")
            with os.fdopen(fd, "w") as out:
                json.dump(entries, out, separators=(",", ":"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
            return True
        except OSError as exc:
            log.warning("cannot write the ownership journal %s (%s): objects of a killed run will not be "
                        "recognised as this configuration's", self.path, exc)
            return False
