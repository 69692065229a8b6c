"""/v1/clients, /v1/clinicians and /v1/episodes: reads and episode lifecycle."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from fit_service.api import docs
from fit_service.api.auth import requires
from fit_service.api.context import run
from fit_service.api.parsing import Blueprint
from fit_service.api.schemas import (
    ClientOut,
    ClientPage,
    ClinicianPage,
    EpisodeCloseIn,
    EpisodeOpenIn,
    EpisodeOut,
    PageArgs,
    TrajectoryArgs,
    TrajectoryOut,
)
from fit_service.api.sessions import _limit
from fit_service.services import episodes, reads, trajectories
from fit_service.services.principals import Permission

blp = Blueprint("clients", __name__, url_prefix="/v1", description="Clients and episodes")


@blp.route("/clients")
class Clients(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ClientPage)
    @docs.errors(blp, *docs.QUERY)
    def get(self, args: dict[str, Any]) -> Any:
        """The clinic's clients (a clinician key: its own), with cursor pagination."""
        page = run(reads.list_clients, args["cursor"], _limit(args))
        return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/clients/<string:client_id>")
class ClientById(MethodView):
    @blp.response(200, ClientOut)
    @docs.errors(blp, *docs.AUTH, 404)
    def get(self, client_id: str) -> Any:
        """A client's episodes with session-by-session scores."""
        return run(reads.get_client, client_id)


@blp.route("/clinicians")
class Clinicians(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ClinicianPage)
    @docs.errors(blp, *docs.QUERY)
    def get(self, args: dict[str, Any]) -> Any:
        """The clinic's clinicians (EHR ids), with cursor pagination."""
        page = run(reads.list_clinicians, args["cursor"], _limit(args))
        return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/episodes")
class Episodes(MethodView):
    @requires(Permission.EPISODES_WRITE)
    @blp.arguments(EpisodeOpenIn)
    @blp.response(201, EpisodeOut)
    @docs.errors(
        blp,
        *docs.BODY,
        described={409: "The client has an open episode, or a concurrent request created it."},
    )
    def post(self, body: dict[str, Any]) -> Any:
        """Open an episode explicitly (otherwise the first session opens one)."""
        return run(
            episodes.open_episode,
            body["client_id"],
            body["opened_on"],
            body["clinician_id"],
            body["client_age_band"],
        )


@blp.route("/episodes/<uuid:episode_id>/close")
class EpisodeClose(MethodView):
    @requires(Permission.EPISODES_WRITE)
    @blp.arguments(EpisodeCloseIn)
    @blp.response(200, EpisodeOut)
    @docs.errors(blp, *docs.BODY, 404, described={409: "The episode is already closed."})
    def post(self, body: dict[str, Any], episode_id: uuid.UUID) -> Any:
        """Close an episode with its ending reason (planned, client_ended, ...)."""
        return run(
            episodes.close_episode,
            episode_id,
            body["ending_reason"],
            body["closed_on"],
            body["note"],
        )


@blp.route("/episodes/<uuid:episode_id>/trajectory")
class EpisodeTrajectory(MethodView):
    @blp.arguments(TrajectoryArgs, location="query")
    @blp.response(200, TrajectoryOut)
    @docs.errors(blp, *docs.QUERY, 404)
    def get(self, args: dict[str, Any], episode_id: uuid.UUID) -> Any:
        """Outcome scores session by session with the expected path and band (clinic ETR
        when it has enough closed episodes, else the rational rules — the model is named)."""
        return run(trajectories.episode_trajectory, episode_id, args["horizon"])
