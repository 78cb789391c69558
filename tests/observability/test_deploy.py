"""The deployment files: docker-compose.yml, the Prometheus alerts, the Grafana dashboard, gunicorn's config.

No Docker engine runs here: the compose file is validated against the Compose
Specification's JSON schema and by `docker-compose config` (Debian's
docker-compose, which CI installs), and the check `make compose-check` runs
after bringing the stack up (deploy/smoke-check.sh) runs here against local processes.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml
from django.conf import settings
from prometheus_client.metrics import MetricWrapperBase
from rest_framework.test import APIClient

from jobsite.observability import metrics
from tests.e2e.conftest import ROOT, child_env, database_url, free_port, stop, wait_until_healthy, worker

from .conftest import SCRAPE_TOKEN

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
LONG_RUNNING = {"postgres", "redis", "web", "worker", "scheduler", "prometheus", "grafana"}
DEPLOY = ROOT / "deploy"


# -- docker-compose.yml ----------------------------------------------------------------


def test_the_compose_file_follows_the_compose_specification():
    schema = json.loads((Path(__file__).parent / "data" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    assert [error.message for error in validator.iter_errors(COMPOSE)] == []

    broken = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    broken["services"]["web"]["healthcheck"]["interval_s"] = 10  # a misspelt key
    assert list(validator.iter_errors(broken))


def test_every_service_is_there_with_a_healthcheck_and_starts_after_what_it_needs():
    assert set(SERVICES) == LONG_RUNNING | {"migrate"}
    for name in LONG_RUNNING:
        assert SERVICES[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, service in SERVICES.items():
        for needed, how in service.get("depends_on", {}).items():
            assert needed in SERVICES, f"{name} depends on an unknown {needed}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[needed], f"{name} waits for {needed}, which has no healthcheck"
            else:
                assert (needed, how["condition"]) == ("migrate", "service_completed_successfully")
    for name in ("web", "worker", "scheduler"):
        assert {"postgres", "redis", "migrate"} <= set(SERVICES[name]["depends_on"])
    assert SERVICES["prometheus"]["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert SERVICES["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


def test_web_workers_and_scheduler_share_one_metrics_directory():
    for name in ("web", "worker", "scheduler"):
        service = SERVICES[name]
        directory = service["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        assert f"metrics:{directory}" in service["volumes"]
        assert service["environment"]["LOG_FORMAT"] == "json"
    assert SERVICES["worker"]["command"][:3] == ["python", "manage.py", "worker"]
    assert SERVICES["worker"]["deploy"]["replicas"] == 2
    assert "gunicorn.conf.py" in (ROOT / "Dockerfile").read_text()


def test_docker_compose_validates_the_file(tmp_path):
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (CI installs Debian's)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    (tmp_path / ".env").write_text(
        f"SECRET_KEY=x\nMETRICS_TOKEN={SCRAPE_TOKEN}\nGRAFANA_ADMIN_PASSWORD=x\nJOBSITE_API_SECRET=x\n"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    done = subprocess.run(["docker-compose", "config"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["services"]["web"]["environment"]["METRICS_TOKEN"] == SCRAPE_TOKEN
    assert "web" in resolved["services"]["web"]["environment"]["ALLOWED_HOSTS"].split(",")

    (tmp_path / ".env").write_text("SECRET_KEY=x\nGRAFANA_ADMIN_PASSWORD=x\n")
    refused = subprocess.run(["docker-compose", "config"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "METRICS_TOKEN" in refused.stderr


# -- alerts and the dashboard -----------------------------------------------------------


@pytest.fixture
def exposed_names(db, stub_broker, settings) -> set[str]:
    """Every series name jobsite can expose: its metrics' (recorded or not) and the scrape-time gauges."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    names = {
        family.name + suffix
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
        for family in value.describe()
        for suffix in suffixes[family.type]
    }
    settings.METRICS_PUBLIC = True
    text = APIClient().get("/metrics").content.decode()
    return names | {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("jobsite_")}


def _named(expression: str) -> set[str]:
    return set(re.findall(r"\bjobsite_[a-z_]+\b", expression))


def test_every_alert_names_only_metrics_jobsite_exposes(exposed_names):
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    alerts = {rule["alert"]: rule["expr"] for rule in rules}

    assert {
        "JobsiteQueueBackingUp",
        "JobsiteNoWorkers",
        "JobsiteHighFailureRate",
        "JobsiteDeadLettersGrowing",
        "JobsiteOutboxBacklog",
    } <= set(alerts)
    for name, expression in alerts.items():
        assert _named(expression) <= exposed_names, name
    assert _named(alerts["JobsiteDeadLettersGrowing"]) == {"jobsite_queue_dead"}
    assert all(rule["annotations"]["summary"] for rule in rules)


def test_the_dashboard_charts_what_the_issue_asks_with_metrics_jobsite_exposes(exposed_names):
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "jobsite.json").read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    expressions = {panel["title"]: [target["expr"] for target in panel["targets"]] for panel in panels}

    for title, exprs in expressions.items():
        for expression in exprs:
            assert _named(expression) <= exposed_names, title
    charted = " ".join(" ".join(exprs) for exprs in expressions.values())
    for needed in (
        "rate(jobsite_jobs_completed_total",  # throughput
        "rate(jobsite_jobs_failed_total",  # failure rate
        "histogram_quantile(0.5, sum by (le, queue) (rate(jobsite_job_pickup_seconds_bucket",
        "histogram_quantile(0.95, sum by (le, queue) (rate(jobsite_job_pickup_seconds_bucket",
        "jobsite_queue_depth",
        "jobsite_workers_alive",
        'jobsite_webhook_attempts_total{outcome="succeeded"}',
    ):
        assert needed in charted, needed
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    provisioning = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert {panel["datasource"]["uid"] for panel in panels} == {provisioning["datasources"][0]["uid"]}


def test_prometheus_scrapes_the_web_server_with_the_token_file_compose_writes():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "jobsite"]
    assert job["static_configs"][0]["targets"] == ["web:8000"]
    token_file = job["authorization"]["credentials_file"]
    assert token_file in SERVICES["prometheus"]["command"][0]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


# -- gunicorn's config and the compose check, on local processes -------------------------


@pytest.mark.e2e
def test_the_compose_checks_smoke_test_passes_and_gunicorn_logs_json(transactional_db, demo_pipelines, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    port = free_port()
    env = child_env(
        DATABASE_URL=database_url(),
        DRAMATIQ_BROKER_URL=settings.TEST_BROKER_URL,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        METRICS_TOKEN=SCRAPE_TOKEN,
        LOG_FORMAT="json",
        WEB_BIND=f"127.0.0.1:{port}",
        WEB_WORKERS="2",
    )
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "web.log"
    with open(log_path, "wb") as log:
        web = subprocess.Popen(
            [Path(sys.executable).parent / "gunicorn", "-c", "deploy/gunicorn.conf.py", "jobsite.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_healthy(url, web)
            with worker(env):
                check = subprocess.run(
                    ["bash", str(DEPLOY / "smoke-check.sh"), url],
                    env={**env, "SMOKE_TIMEOUT_SECONDS": "60"},
                    capture_output=True,
                    text=True,
                    timeout=180,
                )
            requests.get(f"{url}/no-such-page", timeout=5)
        finally:
            web.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
            try:
                web.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop(web)

    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.rstrip().endswith("] OK")
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]  # each line whole
    assert {"gunicorn.error", "gunicorn.access", "django.request"} <= {record["logger"] for record in records}
