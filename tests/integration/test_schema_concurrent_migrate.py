"""Several instances running ``fit migrate`` at once (each as it starts) all succeed."""

from __future__ import annotations

import threading

from fit_service.adapters import migrations
from fit_service.adapters.db import make_engine


def test_concurrent_upgrades_queue_instead_of_failing(database_url: str) -> None:
    """Two upgrades from an empty database at the same moment: before the advisory lock the
    second ran the same DDL and failed on PostgreSQL (duplicate key in pg_type)."""
    engine = make_engine(database_url)
    try:
        migrations.downgrade(engine, "base")
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def migrate() -> None:
            start.wait()
            try:
                migrations.upgrade(engine)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        workers = [threading.Thread(target=migrate) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert errors == []
        with engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.head_revision()
    finally:
        migrations.upgrade(engine)  # leave the shared database migrated for other tests
        engine.dispose()
