"""The SQLite engine queues this process's writers on a lock of its own (dialer/storage/engine.py): held
from a transaction's first write to its end, released on commit, rollback and close, and never needed
for reads. Real SQLite files; no timing is asserted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dialer.storage.engine import _WRITE_QUEUES, make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    yield engine
    engine.dispose()


def queue(tmp_path: Path) -> threading.Lock:
    return _WRITE_QUEUES[(tmp_path / "q.db").resolve()]


def test_held_from_the_first_write_to_commit_and_not_for_reads(engine: sa.Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT count(*) FROM t")).scalar()
        assert not queue(tmp_path).locked(), "a read takes no place in the queue"
        conn.execute(sa.text("INSERT INTO t (id, v) VALUES (1, 'a')"))
        assert queue(tmp_path).locked()
    assert not queue(tmp_path).locked()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT v FROM t WHERE id = 1")).scalar() == "a"


def test_released_by_a_failed_write_and_by_a_connection_given_back(engine: sa.Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t (id, v) VALUES (1, 'a')"))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t (id, v) VALUES (1, 'again')"))
    assert not queue(tmp_path).locked(), "the rollback let the next writer in"
    with engine.connect() as conn:  # no commit: the pool rolls back when the connection is returned
        conn.execute(sa.text("UPDATE t SET v = 'b' WHERE id = 1"))
    assert not queue(tmp_path).locked()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT v FROM t WHERE id = 1")).scalar() == "a"


def test_concurrent_writers_all_land(engine: sa.Engine) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(40):
                with engine.begin() as conn:
                    conn.execute(
                        sa.text("INSERT INTO t (id, v) VALUES (:id, 'x')"), {"id": worker * 1000 + i}
                    )
                    conn.execute(sa.text("UPDATE t SET v = 'y' WHERE id = :id"), {"id": worker * 1000 + i})
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM t WHERE v = 'y'")).scalar() == 240
