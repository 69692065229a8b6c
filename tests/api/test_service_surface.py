"""Health checks, the OpenAPI document, the app factory and the CLI."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from fit_service.adapters import migrations
from fit_service.app import create_app
from fit_service.config import ConfigError, Settings
from tests.api.test_alerts import rupture
from tests.conftest import Tenant, role_for, session_payload


def test_healthz_and_readyz(client: FlaskClient) -> None:
    """/healthz answers; /readyz sees a reachable database at the latest migration."""
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["database"] == "reachable"


def test_readyz_is_503_before_migrations(tmp_path: Path) -> None:
    """An unmigrated database is reported not ready, with the expected revision."""
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}", instance_path=tmp_path)
    )
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.json["schema"]["current"] is None
    app.extensions["fit"].engine.dispose()


def test_readyz_answers_at_once_while_another_connection_writes(tmp_path: Path) -> None:
    """On SQLite a writer holding the lock does not make /readyz wait 10 s and say
    "unreachable": the probe only reads, and a busy database is not a down one."""
    path = tmp_path / "busy.sqlite3"
    app = create_app(Settings(database_url=f"sqlite:///{path}", instance_path=tmp_path))
    migrations.upgrade(app.extensions["fit"].engine)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # e.g. a long backfill batch
        started = time.monotonic()
        resp = app.test_client().get("/readyz")
        elapsed = time.monotonic() - started
        writer.execute("ROLLBACK")
    finally:
        writer.close()
        app.extensions["fit"].engine.dispose()
    assert resp.status_code == 200, resp.json
    assert resp.json["database"] == "reachable"
    assert elapsed < 2


def test_openapi_document_is_generated_from_schemas(client: FlaskClient) -> None:
    """/v1/openapi.json is public and describes the session schema the API validates with."""
    spec = client.get("/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/v1/sessions" in spec["paths"]
    assert "/v1/sessions/batch" in spec["paths"]
    session_in = spec["components"]["schemas"]["SessionIn"]
    assert {"ehr_session_id", "client_id", "clinician_id", "date"} <= set(session_in["required"])
    assert session_in["additionalProperties"] is False


def test_openapi_document_is_valid_openapi_3(client: FlaskClient) -> None:
    """The document validates against the OpenAPI 3.0 schema (as schemathesis bundles it):
    the report's 200 had lost its required description."""
    from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR  # noqa: PLC0415

    spec = client.get("/v1/openapi.json").json
    errors = [str(e)[:300] for e in OPENAPI_30_VALIDATOR.iter_errors(spec)]
    assert errors == []
    report = spec["paths"]["/v1/reports/monthly/{month}"]["get"]["responses"]["200"]
    assert report["description"].startswith("The report as PDF")


_ID_SAMPLES = ["C-1", "a.b_c:d-e", "x" * 64, "x" * 65, "x" * 128, "x" * 129, "", "C 1"]
_ID_SAMPLES += ["C-1\n", "C/1", "\u00e9", " S-1", "S-1 ", "S\t1"]


def test_openapi_gives_the_identifier_limits_the_session_schema_enforces(tmp_path: Path) -> None:
    """SessionIn's ehr_session_id, client_id and clinician_id carry their length limits (and
    the ids' pattern) in the OpenAPI document, and the document allows what the schema
    accepts, sample by sample."""
    from marshmallow import ValidationError  # noqa: PLC0415

    from fit_service.api.schemas import SessionIn  # noqa: PLC0415

    def accepted(name: str, value: str) -> bool:
        try:
            SessionIn().load(session_payload(**{name: value}))
        except ValidationError as exc:
            return name not in exc.messages
        return True

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", instance_path=tmp_path)
    spec = create_app(settings).test_client().get("/v1/openapi.json").json
    properties = spec["components"]["schemas"]["SessionIn"]["properties"]
    for name, longest in {"ehr_session_id": 128, "client_id": 64, "clinician_id": 64}.items():
        documented = properties[name]
        assert (documented["minLength"], documented["maxLength"]) == (1, longest), name
        assert accepted(name, "x" * longest)
        assert not accepted(name, "x" * (longest + 1))
        pattern = documented.get("pattern")
        for sample in _ID_SAMPLES:
            allowed = 1 <= len(sample) <= longest and (
                # JSON Schema patterns are ECMA-262: "$" ends the string there, as "\Z" does
                # in Python (Python's "$" also matches before a trailing newline)
                pattern is None or re.search(pattern.removesuffix("$") + r"\Z", sample) is not None
            )
            if pattern is not None:
                assert allowed == accepted(name, sample), (name, sample)
            else:
                # ehr_session_id's other rules (no blank ends, no control characters) are
                # in its description, not a pattern: the document allows all it accepts
                assert allowed or not accepted(name, sample), (name, sample)
    assert properties["ehr_session_id"].get("pattern") is None
    assert "whitespace" in properties["ehr_session_id"]["description"]


def test_openapi_gives_the_report_month_and_clinician_rules_the_service_enforces(
    tmp_path: Path,
) -> None:
    """The report's month and clinician parameters carry the patterns the service checks, so
    a document-driven client (and the contract test's generator) sends what it accepts."""
    from fit_service.domain.errors import FitError  # noqa: PLC0415
    from fit_service.services.monthly_reports import parse_period  # noqa: PLC0415

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", instance_path=tmp_path)
    spec = create_app(settings).test_client().get("/v1/openapi.json").json
    path = spec["paths"]["/v1/reports/monthly/{month}"]
    (month,) = (p for p in path["parameters"] if p["name"] == "month")
    pattern = month["schema"]["pattern"].removesuffix("$") + r"\Z"

    def parses(value: str) -> bool:
        try:
            parse_period(value)
        except (FitError, ValueError):
            return False
        return True

    for sample in (
        "2026-01",
        "2026-12",
        "1999-10",
        "2026-00",
        "2026-13",
        "2026-1",
        "26-01",
        "2026-01\n",
        " 2026-01",
        "2026/01",
        "",
        "\uff12\uff10\uff12\uff16-01",  # full-width digits
    ):
        assert (re.search(pattern, sample) is not None) == parses(sample), sample
    (clinician,) = (p for p in path["get"]["parameters"] if p["name"] == "clinician")
    assert clinician["schema"]["pattern"] == "^[A-Za-z0-9._:-]+$"
    assert (clinician["schema"]["minLength"], clinician["schema"]["maxLength"]) == (1, 64)


def test_openapi_references_resolve_and_errors_are_problem_json(client: FlaskClient) -> None:
    """Every $ref in the document names a component it holds, and the shared error responses
    (default, and any other) are documented as application/problem+json with the problem
    schema."""
    spec = client.get("/v1/openapi.json").json

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(spec):
        _hash, _components, kind, name = ref.split("/")
        assert name in spec["components"][kind], ref
    shared = spec["components"]["responses"]
    assert "DEFAULT_ERROR" in shared
    for name in shared:
        content = shared[name]["content"]
        assert content == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemOut"}}
        }


def _undocumented(
    value: Any, schema: dict[str, Any], spec: dict[str, Any], at: str, walked: list[str]
) -> list[str]:
    """Paths in ``value`` whose keys the schema does not list, or that miss a listed key
    (free-form objects, without ``properties``, are not walked; ``walked`` collects the
    objects that were)."""
    # a nullable nested schema: {"anyOf": [{"type": "object", "nullable": true}, {"$ref": ...}]}
    refs = [option for option in schema.get("anyOf", ()) if "$ref" in option]
    if refs:
        (schema,) = refs
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if value is None:
        return []
    if isinstance(value, list) and "items" in schema:
        return [
            p
            for i, v in enumerate(value)
            for p in _undocumented(v, schema["items"], spec, f"{at}[{i}]", walked)
        ]
    if not isinstance(value, dict) or "properties" not in schema:
        return []
    properties = schema["properties"]
    walked.append(at)
    found = [f"{at}.{key} (not documented)" for key in value if key not in properties]
    found += [f"{at}.{key} (documented, absent)" for key in properties if key not in value]
    for key, inner in value.items():
        if key in properties:
            found += _undocumented(inner, properties[key], spec, f"{at}.{key}", walked)
    return found


def test_responses_have_the_fields_the_openapi_document_gives(
    client: FlaskClient, tenant: Tenant
) -> None:
    """An integrator codes against /v1/openapi.json: each read's body has exactly the fields
    its documented schema lists, nested objects included (the episode's outcome and its
    trajectory assessment, the clinician list's items)."""
    spec = client.get("/v1/openapi.json").json
    auth = tenant.auth("manager")
    first = client.post("/v1/sessions", json=session_payload(), headers=tenant.auth())
    second = client.post(
        "/v1/sessions",
        json=session_payload(ehr_session_id="S-2", date="2026-11-09"),
        headers=tenant.auth(),
    )
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json["episode"]["outcome"]["status"] is not None
    reads = {
        ("/v1/sessions", "post"): second.json,
        ("/v1/clients/{client_id}", "get"): client.get("/v1/clients/C-1", headers=auth).json,
        ("/v1/clients", "get"): client.get("/v1/clients", headers=auth).json,
        ("/v1/clinicians", "get"): client.get("/v1/clinicians", headers=auth).json,
        ("/v1/sessions", "get"): client.get("/v1/sessions?limit=1", headers=auth).json,
    }
    walked: list[str] = []
    for (path, method), body in reads.items():
        responses = spec["paths"][path][method]["responses"]
        ok = next(r for status, r in responses.items() if status.startswith("2"))
        schema = ok["content"]["application/json"]["schema"]
        assert _undocumented(body, schema, spec, path, walked) == [], (method, path)
    # the nested objects were checked, not skipped as free-form
    for nested in (
        "/v1/sessions.episode.outcome.trajectory",
        "/v1/clients/{client_id}.episodes[0].outcome",
        "/v1/clinicians.items[0]",
    ):
        assert nested in walked, nested


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if method in {"get", "post", "put", "delete", "patch"}
    ]


def test_every_operation_documents_its_errors_as_problem_json(client: FlaskClient) -> None:
    """Each /v1 operation documents 401 and 403; one with a body 400, 413, 415 and 422; one
    with an id in its path 404; and every error it documents is application/problem+json."""
    spec = client.get("/v1/openapi.json").json
    operations = _operations(spec)
    assert len(operations) >= 25
    for method, path, op in operations:
        responses = op["responses"]
        expected = {"401", "403"}
        if "requestBody" in op:
            expected |= {"400", "413", "415", "422"}
        if "{" in path:
            expected.add("404")
        assert expected <= set(responses), (method, path, sorted(responses))
        for status, response in responses.items():
            if status == "default" or int(status) < 400:
                continue
            assert list(response["content"]) == ["application/problem+json"], (method, path)
    report = spec["paths"]["/v1/reports/monthly/{month}"]["get"]["responses"]["200"]
    assert set(report["content"]) == {"application/pdf", "application/json", "text/csv"}


def test_every_post_and_put_documents_the_415_it_answers_to_a_body_not_json(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Every /v1 POST and PUT refuses a body that is not JSON with 415 (to a role that may use
    it), a route that reads no body (acknowledging an alert) too, and documents that 415 and the
    413 of a body too large (found by the schemathesis contract test)."""
    spec = client.get("/v1/openapi.json").json
    for method, path, op in _operations(spec):
        if method not in {"post", "put"}:
            continue
        assert {"413", "415"} <= set(op["responses"]), (method, path, sorted(op["responses"]))
        resp = client.open(
            _filled(path),
            method=method.upper(),
            data="x",
            content_type="text/plain",
            headers=tenant.auth(role_for(method, path)),
        )
        assert (resp.status_code, resp.mimetype) == (415, "application/problem+json"), path


def test_every_operation_that_answers_428_documents_the_if_match_header(
    client: FlaskClient,
) -> None:
    """An operation documenting 428 (If-Match missing) names the If-Match header it wants:
    replacing a goal sheet did not (found by the schemathesis contract test)."""
    spec = client.get("/v1/openapi.json").json
    for method, path, op in _operations(spec):
        if "428" not in op["responses"]:
            continue
        headers = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
        assert "If-Match" in headers, (method, path)


def _filled(path: str) -> str:
    """A URL of the document's ``path``, each parameter given a value of its form."""
    url = re.sub(r"\{month\}", "2026-01", path)
    return re.sub(r"\{[a-z_]+\}", "00000000-0000-4000-8000-000000000000", url)


def test_every_documented_operation_answers_401_problem_json_without_a_key(
    client: FlaskClient,
) -> None:
    """The 401 each operation documents is what it answers when no key is sent."""
    spec = client.get("/v1/openapi.json").json
    for method, path, _op in _operations(spec):
        resp = client.open(_filled(path), method=method.upper(), json={})
        assert resp.status_code == 401, (method, path, resp.status_code)
        assert resp.mimetype == "application/problem+json", (method, path)


def test_every_operation_documents_the_422_it_answers_to_a_query_parameter_it_does_not_take(
    client: FlaskClient, tenant: Tenant
) -> None:
    """Every /v1 operation answers a query parameter it does not take with 422 unknown_field
    naming it (by a role allowed to call it, before the record is looked up), and documents
    that 422: the GETs by id, the settings and the webhook endpoints did not."""
    spec = client.get("/v1/openapi.json").json
    undocumented, unsaid = [], []
    for method, path, op in _operations(spec):
        resp = client.open(
            f"{_filled(path)}?colour=blue",
            method=method.upper(),
            headers=tenant.auth(role_for(method, path)),
        )
        assert resp.status_code == 422, (method, path, resp.status_code, resp.get_data())
        assert resp.mimetype == "application/problem+json", (method, path)
        assert (resp.json["rule"], resp.json["field"]) == ("unknown_field", "query.colour")
        documented = op["responses"].get("422")
        if documented is None:
            undocumented.append(f"{method.upper()} {path}")
        elif "query" not in documented["description"]:
            unsaid.append(f"{method.upper()} {path}")  # its 422 says nothing of the query
    assert undocumented == []
    assert unsaid == []


#: Headers of every answer, whatever the route: HTTP's own and the request id.
_EVERY_ANSWER = {"content-type", "content-length", "x-request-id"}


def test_every_header_a_success_answer_carries_is_declared_on_that_answer(
    client: FlaskClient, tenant: Tenant
) -> None:
    """The replay of an idempotent POST answers Idempotent-Replayed: true (POST /v1/sessions
    replaying a 201 and a 200, the batch its 200); acting on an alert and reading or writing a
    goal sheet answer the ETag that If-Match names. Each header is declared on the operation's
    response of that status in the OpenAPI document, with required: true only where every
    answer carries it (only GET /v1/alerts/{id} declared one)."""
    spec = client.get("/v1/openapi.json").json
    ingest, manager = tenant.auth("ingest"), tenant.auth("manager")
    first, again = session_payload(), session_payload(ehr_session_id="S-2", date="2026-11-09")
    alert = rupture(client, tenant, who="C-7")
    sheet = {"goal": "Sleep through the night", "steps": ["a routine"], "expectation": "unsure"}
    episode = client.get("/v1/clients/C-7", headers=manager).json["episodes"][0]["id"]
    calls: list[tuple[str, str, str, dict[str, Any], Any]] = []
    for key, path, body in (
        ("k-201", "/v1/sessions", first),
        ("k-200", "/v1/sessions", first),  # stored already: unchanged, 200
        ("k-batch", "/v1/sessions/batch", {"sessions": [again]}),
    ):
        # the request, then its replay
        calls += 2 * [("POST", path, path, {**ingest, "Idempotency-Key": key}, body)]
    alert_path, sheet_path = f"/v1/alerts/{alert}", f"/v1/episodes/{episode}/goal-sheet"
    calls += [
        ("GET", "/v1/alerts/{alert_id}", alert_path, manager, None),
        ("POST", "/v1/alerts/{alert_id}/acknowledge", f"{alert_path}/acknowledge",
         {**manager, "If-Match": '"1"'}, None),
        ("POST", "/v1/alerts/{alert_id}/resolve", f"{alert_path}/resolve",
         {**manager, "If-Match": '"2"'}, {"note": "Talked it over."}),
        ("PUT", "/v1/episodes/{episode_id}/goal-sheet", sheet_path, manager, sheet),
        ("PUT", "/v1/episodes/{episode_id}/goal-sheet", sheet_path,
         {**manager, "If-Match": '"1"'}, sheet),
        ("GET", "/v1/episodes/{episode_id}/goal-sheet", sheet_path, manager, None),
    ]  # fmt: skip
    sent: dict[tuple[str, str, str], set[str]] = {}
    answers = []
    for method, documented, url, headers, body in calls:
        resp = client.open(url, method=method, headers=headers, json=body)
        assert resp.status_code < 300, (method, url, resp.status_code, resp.json)
        names = {name for name, _ in resp.headers.items() if name.lower() not in _EVERY_ANSWER}
        sent.setdefault((method, documented, str(resp.status_code)), set()).update(names)
        answers.append(resp)
    assert [(r.status_code, r.headers.get("Idempotent-Replayed")) for r in answers[:6]] == [
        (201, None),
        (201, "true"),
        (200, None),  # unchanged
        (200, "true"),
        (200, None),  # the batch
        (200, "true"),
    ]
    assert [r.headers.get("ETag") for r in answers[6:]] == [
        f'"{r.json["version"]}"' for r in answers[6:]
    ]
    for (method, path, status), names in sent.items():
        declared = spec["paths"][path][method.lower()]["responses"][status].get("headers", {})
        assert names <= set(declared), (method, path, status, sorted(names - set(declared)))
        for name, header in declared.items():
            assert header.get("required", False) == (name == "ETag"), (method, path, name)


def test_create_app_makes_no_connection_at_import(tmp_path: Path) -> None:
    """Creating the app with an unreachable database succeeds; only /readyz notices."""
    app = create_app(
        Settings(
            database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
            instance_path=tmp_path,
        )
    )
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.json["database"] == "unreachable"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FIT_DATABASE_URL": "mysql://x"}, "FIT_DATABASE_URL"),
        ({"FIT_DATABASE_URL": "postgresql://x/y"}, "psycopg"),
        ({"FIT_MAX_BATCH_ITEMS": "lots"}, "FIT_MAX_BATCH_ITEMS"),
        ({"FIT_DATABSE_URL": "sqlite://"}, "unknown setting"),
        ({"FIT_WEBHOOKS_ALLOW_PRIVATE": "maybe"}, "true or false"),
        ({"FIT_DATABASE_URL": "sqlite://"}, "FIT_DATABASE_URL must name an SQLite file"),
        ({"FIT_DATABASE_URL": "sqlite:///:memory:"}, "FIT_DATABASE_URL must name an SQLite file"),
        ({"FIT_KEY_CACHE_SECONDS": "-5"}, "FIT_KEY_CACHE_SECONDS"),
        ({"FIT_SMTP_PORT": "0"}, "FIT_SMTP_PORT"),
        ({"FIT_SMTP_PORT": "70000"}, "FIT_SMTP_PORT"),
        ({"FIT_SMTP_FROM": "fit@x\r\nBcc: a@b"}, "FIT_SMTP_FROM must not contain control"),
        ({"FIT_SMTP_FROM": "not an address"}, "FIT_SMTP_FROM must be a plain ASCII e-mail"),
        ({"FIT_SMTP_FROM": "FIT <fit@x.example>"}, "FIT_SMTP_FROM must be a plain ASCII e-mail"),
        ({"FIT_SMTP_PASSWORD": "hunter2"}, "FIT_SMTP_USERNAME and FIT_SMTP_PASSWORD go together"),
        ({"FIT_SMTP_USERNAME": "fit"}, "FIT_SMTP_USERNAME and FIT_SMTP_PASSWORD go together"),
    ],
)
def test_bad_settings_fail_at_start_with_a_clear_message(env: dict[str, str], message: str) -> None:
    """A malformed FIT_* variable stops start-up with a message naming it."""
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_settings_at_the_edges_of_the_checks_are_accepted() -> None:
    """The values next to the refused ones still start the service."""
    settings = Settings.from_env(
        {
            "FIT_KEY_CACHE_SECONDS": "0",
            "FIT_SMTP_PORT": "65535",
            "FIT_SMTP_FROM": "fit@clinic.example",
            "FIT_SMTP_USERNAME": "fit",
            "FIT_SMTP_PASSWORD": "hunter2",
            "FIT_SMTP_STARTTLS": "true",
            "FIT_DATABASE_URL": "sqlite:////tmp/fit.sqlite3",
        }
    )
    assert (settings.key_cache_seconds, settings.smtp_port) == (0, 65535)


def test_tooling_variables_are_not_settings_errors() -> None:
    """./dev's FIT_PORT and the suite's FIT_TEST_POSTGRES_URL don't trip the typo check."""
    settings = Settings.from_env({"FIT_PORT": "5001", "FIT_TEST_POSTGRES_URL": "x"})
    assert settings.max_batch_items == 5000


def test_cli_creates_clinic_and_keys(app: Flask) -> None:
    """The CLI creates a clinic and a key that then authenticates, and revokes it."""
    runner = app.test_cli_runner()
    out = runner.invoke(args=["fit", "create-clinic", "CLI Clinic"])
    assert out.exit_code == 0, out.output
    clinic_id = out.output.split()[2]
    key_out = runner.invoke(args=["fit", "create-key", clinic_id, "--role", "manager"])
    assert key_out.exit_code == 0, key_out.output
    secret = key_out.output.strip().splitlines()[1]
    client = app.test_client()
    assert (
        client.get("/v1/clients", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    )
    prefix = secret.split("_")[1]
    assert runner.invoke(args=["fit", "revoke-key", prefix]).exit_code == 0
    assert (
        client.get("/v1/clients", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    )
    listed = runner.invoke(args=["fit", "list-keys", clinic_id]).output
    assert prefix in listed
    assert "revoked" in listed
    assert secret not in listed


def _key_count(app: Flask) -> int:
    with app.extensions["fit"].engine.connect() as conn:
        return int(conn.scalar(text("SELECT count(*) FROM api_keys")) or 0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["create-clinic", "x" * 201], "(name: max_length)"),
        (
            ["create-key", "{clinic}", "--role", "manager", "--name", "n" * 201],
            "(name: max_length)",
        ),
        (["create-key", "{clinic}", "--role", "clinician", "--clinician", "T" * 65], "clinician"),
        (["create-key", "{clinic}", "--role", "clinician", "--clinician", "T 1 bad"], "clinician"),
    ],
)
def test_cli_refuses_what_the_database_or_ingestion_would(
    app: Flask, args: list[str], expected: str
) -> None:
    """Names longer than their columns and clinician ids ingestion would refuse are CLI errors
    (exit 1, no traceback, nothing stored), not a DataError or a key bound to no one."""
    runner = app.test_cli_runner()
    made = runner.invoke(args=["fit", "create-clinic", "c" * 200])  # the longest name fits
    assert made.exit_code == 0, made.output
    clinic_id = made.output.split()[2]
    keys_before = _key_count(app)
    out = runner.invoke(args=["fit", *(a.replace("{clinic}", clinic_id) for a in args)])
    assert out.exit_code == 1, out.output
    assert isinstance(out.exception, SystemExit)  # a ClickException, not a crash
    assert expected in out.output
    assert _key_count(app) == keys_before
    listed = runner.invoke(args=["fit", "list-clinics"]).output
    assert "x" * 201 not in listed


def test_every_documented_ehr_id_states_its_rule(client: FlaskClient) -> None:
    """Each client_id and clinician_id of a request body states in the OpenAPI document the
    rule its validator applies (an integrator generating a client from the document learns
    that "C 41" is refused before sending it)."""
    doc = client.get("/v1/openapi.json").json
    schemas = doc["components"]["schemas"]

    def bodies(node: object) -> list[str]:
        """The component names a request body refers to, nested ones included."""
        out: list[str] = []
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                out += [name, *bodies(schemas[name])]
            for value in node.values():
                out += bodies(value)
        elif isinstance(node, list):
            for value in node:
                out += bodies(value)
        return out

    requests = {
        name
        for path in doc["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "requestBody" in operation
        for name in bodies(operation["requestBody"])
    }
    checked = []
    for name in sorted(requests):
        for prop in ("client_id", "clinician_id"):
            spec = schemas[name].get("properties", {}).get(prop)
            if spec is None:
                continue
            checked.append(name)
            assert spec.get("pattern") == "^[A-Za-z0-9._:-]+$", (name, prop, spec)
            assert (spec.get("minLength"), spec.get("maxLength")) == (1, 64), (name, prop)
    assert "EpisodeOpenIn" in checked
