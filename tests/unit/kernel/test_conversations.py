from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel.conversations import ConversationStore, StoredMessage, StoreFull
from kernel.crypto import CryptoError, create_master_key

SECRET = "my ID card is 110101199003077777 and my phone 13800138000"


def _store(tmp_path: Path, algorithm: str = "aes-256-gcm") -> ConversationStore:
    key = tmp_path / "master.key"
    if not key.exists():
        create_master_key(key)
    return ConversationStore(tmp_path / "c.db", key, algorithm)


@pytest.mark.parametrize("algorithm", ["aes-256-gcm", "sm4-gcm"])
def test_round_trip_and_nothing_readable_on_disk(tmp_path: Path, algorithm: str) -> None:
    store = _store(tmp_path, algorithm)
    store.append_turn("s1", [StoredMessage("system", "You are Aria, a formal agent."),
                             StoredMessage("user", SECRET), StoredMessage("assistant", "Noted.")])
    store.append_turn("s1", [StoredMessage("user", "again"), StoredMessage("assistant", "Sure.")])
    assert [(m["seq"], m["role"], m["content"]) for m in store.export("s1")] == [
        (1, "system", "You are Aria, a formal agent."), (2, "user", SECRET),
        (3, "assistant", "Noted."), (4, "user", "again"), (5, "assistant", "Sure.")]
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("c.db*"))
    for plain in (SECRET, "110101199003077777", "formal agent", "Noted"):
        assert plain.encode() not in raw


def test_swapped_or_tampered_rows_fail_to_decrypt(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.append_turn("s1", [StoredMessage("user", "first"), StoredMessage("assistant", "second")])
    store.close()
    db = sqlite3.connect(tmp_path / "c.db")
    rows = db.execute("SELECT seq, nonce, ciphertext FROM messages ORDER BY seq").fetchall()
    db.execute("UPDATE messages SET nonce = ?, ciphertext = ? WHERE seq = 1", rows[1][1:])
    db.commit()
    db.close()
    with pytest.raises(CryptoError, match="message 1: ciphertext failed authentication"):
        _store(tmp_path).export("s1")


def test_wrong_or_exposed_master_key_is_refused(tmp_path: Path) -> None:
    _store(tmp_path).append_turn("s", [StoredMessage("user", "x")])
    key = tmp_path / "master.key"
    key.chmod(0o644)
    with pytest.raises(CryptoError, match="permissions 0644 are too wide"):
        _store(tmp_path)
    key.chmod(0o600)
    key.write_text("00" * 32)
    with pytest.raises(CryptoError, match="wrong master key"):
        _store(tmp_path)


def test_rotation_keeps_old_records_readable_and_reencrypt_moves_them(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.append_turn("s", [StoredMessage("user", "old")])
    first = store.active_key_id()
    second = store.rotate_key()
    assert second != first
    store.append_turn("s", [StoredMessage("user", "new")])
    assert [m["content"] for m in store.export("s")] == ["old", "new"]
    assert store.reencrypt() == 1
    keys = {r[0] for r in store._db.execute("SELECT key_id FROM messages")}
    assert keys == {second}
    assert [m["content"] for m in store.export("s")] == ["old", "new"]


def test_purge_removes_only_old_records(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.append_turn("old", [StoredMessage("user", "a")])
    store._db.execute("UPDATE messages SET created = created - 100 * 86400")
    store.append_turn("new", [StoredMessage("user", "b")])
    assert store.purge(older_than_s=30 * 86400) == 1
    assert not store.has_session("old") and store.has_session("new")


WRITER = """
import sys
from pathlib import Path
from kernel.conversations import ConversationStore, StoredMessage, StoreFull
store = ConversationStore(Path(sys.argv[1]) / "c.db", Path(sys.argv[1]) / "master.key")
for i in range(100000):
    store.append_turn(f"s{i % 7}", [StoredMessage("user", f"q{i}"),
                                    StoredMessage("assistant", f"a{i}")])
    print(i, flush=True)
"""


def test_sigkill_during_writes_loses_no_acknowledged_turn(tmp_path: Path) -> None:
    _store(tmp_path).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[3])
    acknowledged = []
    while len(acknowledged) < 150:
        acknowledged.append(int(writer.stdout.readline()))
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    time.sleep(0.1)
    store = _store(tmp_path)
    stored = {m["content"] for s in range(7) for m in store.export(f"s{s}")}
    for i in acknowledged:
        assert {f"q{i}", f"a{i}"} <= stored
    # No half turn: every question has its answer.
    questions = {c[1:] for c in stored if c.startswith("q")}
    answers = {c[1:] for c in stored if c.startswith("a")}
    assert questions == answers


def test_rotation_by_another_process_is_picked_up(tmp_path: Path) -> None:
    serving = _store(tmp_path)
    serving.append_turn("s", [StoredMessage("user", "before")])
    admin = _store(tmp_path)  # e.g. `onlycs conversations rotate-key` while serving
    admin.rotate_key()
    serving.append_turn("s", [StoredMessage("user", "after")])
    assert [m["content"] for m in admin.export("s")] == ["before", "after"]


def test_a_store_locked_by_another_process_fails_fast_then_recovers(tmp_path: Path) -> None:
    import threading

    from kernel.conversations import StoreBusy
    from kernel.crypto import create_master_key

    create_master_key(tmp_path / "m.key")
    store = ConversationStore(tmp_path / "c.db", tmp_path / "m.key", busy_timeout_s=0.2)
    other = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # what `purge` or `rotate-key` holds while it runs
    turn = [StoredMessage("user", "q"), StoredMessage("assistant", "a")]
    with pytest.raises(StoreBusy):
        store.append_turn("s", turn)
    other.execute("ROLLBACK")
    done = threading.Event()

    def write() -> None:
        store.append_turn("s", turn)
        done.set()

    # Before the fix the failed BEGIN left the store's own lock held: this write hung.
    threading.Thread(target=write, daemon=True).start()
    assert done.wait(10), "a write after a busy store hung"
    assert [m["content"] for m in store.export("s")] == ["q", "a"]


def test_one_corrupt_record_is_left_out_and_the_session_goes_on(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.append_turn("s1", [StoredMessage("user", "first"), StoredMessage("assistant", "one")])
    store.append_turn("s1", [StoredMessage("user", "second"), StoredMessage("assistant", "two")])
    store.close()
    db = sqlite3.connect(tmp_path / "c.db")
    db.execute("UPDATE messages SET ciphertext = zeroblob(length(ciphertext)) WHERE seq = 2")
    db.commit()
    db.close()
    store = _store(tmp_path)
    assert [m["content"] for m in store.recent("s1", 10)] == ["first", "second", "two"]
    assert store.corrupt_records == 1
    store.append_turn("s1", [StoredMessage("user", "third"), StoredMessage("assistant", "3")])
    assert [m["seq"] for m in store.recent("s1", 2)] == [5, 6]
    with pytest.raises(CryptoError, match="message 2"):  # an admin's export still says so
        store.export("s1")


@pytest.mark.skipif(os.geteuid() != 0, reason=(
    "not root: the test mounts a 512 KiB tmpfs to fill it, and mount(2) needs CAP_SYS_ADMIN, "
    "which an unprivileged run cannot get (make test and CI run as root here, so it runs)"))
def test_a_full_disk_acknowledges_nothing_and_the_store_recovers(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], check=True)
    try:
        key = tmp_path / "master.key"
        create_master_key(key)
        store = ConversationStore(disk / "c.db", key)
        store.append_turn("s1", [StoredMessage("user", "before"),
                                 StoredMessage("assistant", "ok")])
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError, match="No space"):
            while True:  # fill the disk to the last block
                os.write(fd, os.urandom(4096))
        os.close(fd)
        with pytest.raises(StoreFull):
            for i in range(200):
                store.append_turn(f"s{i}", [StoredMessage("user", "x" * 4000),
                                            StoredMessage("assistant", "y" * 4000)])
        written = {m["content"] for m in store.export("s1")}
        filler.unlink()  # room again: the next turn is stored, nothing half-written before
        store.append_turn("s1", [StoredMessage("user", "after"), StoredMessage("assistant", "ok")])
        assert written == {"before", "ok"}
        assert [m["content"] for m in store.export("s1")] == ["before", "ok", "after", "ok"]
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
