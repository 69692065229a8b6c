"""/v1/alerts, goal sheets, webhook endpoints and clinic settings."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("alerts", __name__, url_prefix="/v1", description="Risk alerts and delivery")
