"""The baseline for the ingestion benchmark: a bare Flask endpoint that inserts one row and
reads 20 back, on the same driver and pool settings as the service. Not part of the product."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request
from sqlalchemy import text

from fit_service.adapters.db import make_engine

app = Flask(__name__)
engine = make_engine(os.environ["FIT_DATABASE_URL"])


@app.post("/bare")
def bare() -> Any:
    body = request.get_json()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO bench_rows (payload) VALUES (:p)"), {"p": str(body)[:200]})
        rows = conn.execute(
            text("SELECT id, payload FROM bench_rows ORDER BY id DESC LIMIT 20")
        ).all()
    return {"rows": len(rows)}, 201
