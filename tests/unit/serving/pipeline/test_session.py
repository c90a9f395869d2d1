from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from prometheus_client import REGISTRY

from kernel.errors import APIError
from kernel.store import StoreFull
from kernel.store.sqlite import SQLiteStore
from serving.pipeline.session import SESSION_HEADER, SessionStage
from serving.protocol import ChatRequest
from tests.postgres_server import PostgresServer
from tests.unit.serving.pipeline.conftest import make_config


def _stage(tmp_path: Path) -> SessionStage:
    config = make_config(tmp_path)
    store = SQLiteStore(config.store.path, config.store.master_key_file)
    return SessionStage(config.sessions, store)


def _ask(text: str, **extra: object) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": text}]}
                                      | extra)


async def test_a_saved_turn_comes_back_as_history_in_front_of_the_next(tmp_path: Path) -> None:
    stage = _stage(tmp_path)
    first = await stage.open(_ask("Where is order 9?"), {SESSION_HEADER: "s-1"}, "key-a",
                             "formal")
    assert first.request.messages[0].role == "system"  # the persona
    assert first.turn is not None and first.turn.session_id == "key-a/s-1"
    assert first.turn.client_id == "s-1"
    await stage.save(first.turn, "It ships today.")
    second = await stage.open(_ask("Thanks!"), {SESSION_HEADER: "s-1"}, "key-a", None)
    contents = [m.content for m in second.request.messages]
    assert contents[-3:] == ["Where is order 9?", "It ships today.", "Thanks!"]
    assert [m.role for m in second.turn.messages] == ["user"]  # system text stored once


async def test_bad_session_ids_and_unknown_personas_are_400(tmp_path: Path) -> None:
    stage = _stage(tmp_path)
    for headers, key_persona, param in (({SESSION_HEADER: "a b"}, None, SESSION_HEADER),
                                        ({}, "pirate", "persona")):
        with pytest.raises(APIError) as err:
            await stage.open(_ask("hi"), headers, "key-a", key_persona)
        assert (err.value.status, err.value.param) == (400, param)


async def test_without_a_store_there_is_no_turn(tmp_path: Path) -> None:
    opened = await SessionStage(make_config(tmp_path).sessions, None).open(
        _ask("hi", user="u-1"), {}, "key-a", None)
    assert opened.turn is None


async def test_the_same_session_id_under_another_key_is_another_session(
        tmp_path: Path) -> None:
    stage = _stage(tmp_path)
    mine = await stage.open(_ask("My address is 5 Elm St."), {SESSION_HEADER: "s-9"},
                            "key-a", None)
    await stage.save(mine.turn, "Noted.")
    theirs = await stage.open(_ask("What did I tell you?"), {SESSION_HEADER: "s-9"},
                              "key-b", None)
    assert [m.content for m in theirs.request.messages] == ["What did I tell you?"]
    await stage.save(theirs.turn, "Nothing yet.")
    assert [m["content"] for m in stage.store.export("key-a/s-9")] == [
        "My address is 5 Elm St.", "Noted."]
    assert stage.store.sessions_named("s-9") == ["key-a/s-9", "key-b/s-9"]


async def test_a_full_disk_is_a_507_and_a_corrupt_record_is_counted(tmp_path: Path,
                                                                     monkeypatch) -> None:
    stage = _stage(tmp_path)
    opened = await stage.open(_ask("hello"), {SESSION_HEADER: "s-full"}, "key-a", None)

    def full(*_: object) -> None:
        raise StoreFull("database or disk is full")

    monkeypatch.setattr(stage.store, "append_turn", full)
    with pytest.raises(APIError) as err:
        await stage.save(opened.turn, "hi")
    assert (err.value.status, err.value.code) == (507, "insufficient_storage")
    assert "nothing was acknowledged" in err.value.message
    before = REGISTRY.get_sample_value("onlycs_store_corrupt_records_total") or 0.0
    monkeypatch.undo()
    await stage.save(opened.turn, "hi")
    stage.store._db.execute("UPDATE messages SET ciphertext = zeroblob(16) WHERE seq = 2")
    again = await stage.open(_ask("still there?"), {SESSION_HEADER: "s-full"}, "key-a", None)
    assert [m.content for m in again.request.messages][-2:] == ["hello", "still there?"]
    assert REGISTRY.get_sample_value("onlycs_store_corrupt_records_total") == before + 1


async def test_a_store_out_of_reach_is_a_503_to_retry_and_then_serves_again(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    from kernel.store.postgres import PostgresStore

    config = make_config(tmp_path)
    dsn = postgres_server.new_database()
    stage = SessionStage(config.sessions, PostgresStore(dsn, config.store.master_key_file))
    first = await stage.open(_ask("hello"), {SESSION_HEADER: "s-pg"}, "key-a", None)
    await stage.save(first.turn, "hi")
    # The server drops the connection (a restart, a failover).
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE application_name = 'onlycs'")
    with pytest.raises(APIError) as err:
        await stage.open(_ask("still there?"), {SESSION_HEADER: "s-pg"}, "key-a", None)
    assert (err.value.status, err.value.code) == (503, "store_unavailable")
    assert err.value.headers["Retry-After"]
    again = await stage.open(_ask("still there?"), {SESSION_HEADER: "s-pg"}, "key-a", None)
    assert [m.content for m in again.request.messages][-3:] == ["hello", "hi", "still there?"]
