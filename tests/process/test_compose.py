"""compose.yaml is a valid compose file with the services the README promises.

No container engine runs here, so the file is checked against the compose-spec JSON schema
(check-jsonschema ships it) and for the references the schema cannot see.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"


def load() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_spec_schema():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_and_their_order():
    services = load()["services"]
    assert sorted(services) == ["api", "migrate", "postgres", "redis", "worker"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["migrate"]["command"] == ["infusion", "migrate"]
    assert services["worker"]["command"] == ["infusion", "worker"]


def test_servers_and_api_have_healthchecks():
    services = load()["services"]
    for name in ("postgres", "redis", "api"):
        assert services[name]["healthcheck"]["test"], name
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])


def test_worker_can_be_scaled():
    worker = load()["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker


def test_every_reference_resolves():
    doc = load()
    services, volumes = doc["services"], set(doc.get("volumes") or {})
    for name, service in services.items():
        assert set(service.get("depends_on") or {}) <= set(services), name
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            assert source.startswith((".", "/")) or source in volumes, (name, source)


APP_DATABASE_URL = (
    "postgresql://infusion_app:${INFUSION_APP_DB_PASSWORD:?set INFUSION_APP_DB_PASSWORD}"
    "@postgres:5432/infusion"
)


def test_app_services_get_urls_and_required_secrets():
    services = load()["services"]
    for name in ("migrate", "api", "worker"):
        env = services[name]["environment"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["SECRET_KEY"] == "${SECRET_KEY:?set SECRET_KEY}"
        assert env["INFUSION_AUDIT_KEY"] == "${INFUSION_AUDIT_KEY:?set INFUSION_AUDIT_KEY}"
        assert env["INFUSION_ENV"] == "production"


def test_only_migrate_connects_as_the_owner():
    services = load()["services"]
    migrate = services["migrate"]["environment"]
    assert migrate["DATABASE_URL"] == "postgresql://infusion:infusion@postgres:5432/infusion"
    assert migrate["INFUSION_APP_DATABASE_URL"] == APP_DATABASE_URL
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"] == APP_DATABASE_URL, name
        assert "INFUSION_APP_DATABASE_URL" not in env, name
        assert "infusion:infusion@" not in " ".join(env.values()), name


def test_api_and_worker_share_the_audit_anchor_outside_the_database():
    services = load()["services"]
    for name in ("api", "worker"):
        assert services[name]["volumes"] == ["audit:/home/infusion"], name
        assert (
            services[name]["environment"]["INFUSION_AUDIT_ANCHOR_FILE"]
            == "/home/infusion/audit-anchor.jsonl"
        )
    assert services["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]
