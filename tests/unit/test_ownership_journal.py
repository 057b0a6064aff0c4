"""The ownership journal on disk: appends, concurrent records, the older form, torn lines, trimming."""

import json
import threading

from raydog.lifecycle import ownership
from raydog.lifecycle.ownership import OwnershipJournal


def test_records_made_together_are_all_on_disk_for_the_next_process(tmp_path):
    path = tmp_path / "raydog-ownership.json"
    journal = OwnershipJournal(path)
    issued: dict[str, str] = {}

    def create(index: int) -> None:
        issued[f"pool-{index}"] = journal.issue("worker_pool", "ns", f"pool-{index}")

    threads = [threading.Thread(target=create, args=(index,)) for index in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    later = OwnershipJournal(path)  # another process, reading the file afresh
    for name, token in issued.items():
        assert later.tokens("worker_pool", "ns", name) == {token}
    lines = path.read_text().splitlines()
    assert len(lines) == 40 and all(json.loads(line)["kind"] == "worker_pool" for line in lines)


def test_entries_another_process_appends_are_seen(tmp_path):
    path = tmp_path / "raydog-ownership.json"
    reader, writer = OwnershipJournal(path), OwnershipJournal(path)
    first = writer.issue("work_requirement", "ns", "c")
    assert reader.tokens("work_requirement", "ns", "c") == {first}
    second = writer.issue("work_requirement", "ns", "c")
    assert reader.tokens("work_requirement", "ns", "c") == {first, second}
    assert reader.tokens("worker_pool", "ns", "c") == frozenset()


def test_a_journal_in_the_older_form_is_read_and_rewritten_a_line_per_entry(tmp_path):
    path = tmp_path / "raydog-ownership.json"
    old = [{"kind": "worker_pool", "namespace": "ns", "name": "p", "token": "rd-00000000000000aa", "time": 1}]
    path.write_text(json.dumps(old))
    journal = OwnershipJournal(path)
    assert journal.tokens("worker_pool", "ns", "p") == {"rd-00000000000000aa"}
    new = journal.issue("worker_pool", "ns", "p")
    assert OwnershipJournal(path).tokens("worker_pool", "ns", "p") == {"rd-00000000000000aa", new}
    assert [json.loads(line)["token"] for line in path.read_text().splitlines()] == ["rd-00000000000000aa", new]


def test_a_line_torn_by_a_crash_costs_no_later_entry(tmp_path):
    path = tmp_path / "raydog-ownership.json"
    journal = OwnershipJournal(path)
    kept = journal.issue("worker_pool", "ns", "p")
    with open(path, "a") as out:
        out.write('{"kind":"worker_pool","namespace":"ns","na')  # killed half-way through a write
    after = OwnershipJournal(path).issue("worker_pool", "ns", "p")
    assert OwnershipJournal(path).tokens("worker_pool", "ns", "p") == {kept, after}


def test_the_journal_keeps_the_newest_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(ownership, "KEEP_ENTRIES", 5)
    path = tmp_path / "raydog-ownership.json"
    journal = OwnershipJournal(path)
    tokens = [journal.issue("worker_pool", "ns", f"p{index}") for index in range(12)]
    lines = path.read_text().splitlines()
    assert 5 <= len(lines) <= 10
    assert [json.loads(line)["token"] for line in lines] == tokens[-len(lines):]
    assert OwnershipJournal(path).tokens("worker_pool", "ns", "p11") == {tokens[-1]}
    assert OwnershipJournal(path).tokens("worker_pool", "ns", "p0") == frozenset()


def test_a_journal_that_cannot_be_written_still_answers_this_process(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    journal = OwnershipJournal(blocked / "raydog-ownership.json")  # its directory is a file
    token = journal.issue("worker_pool", "ns", "p")
    assert journal.tokens("worker_pool", "ns", "p") == {token}
