"""/v1/reports: monthly benchmark reports (PDF, JSON, CSV by Accept)."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("reports", __name__, url_prefix="/v1", description="Monthly benchmark reports")
