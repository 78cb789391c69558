"""The jobs admin pages."""

from django.urls import reverse

from tests.factories import JobFactory

SECRET = "whsec-never-shown-4f1c"


def test_the_webhook_secret_is_never_shown_in_the_admin(admin_client):
    job = JobFactory(webhook_url="https://hooks.example.com/cb", webhook_secret=SECRET)
    pages = [
        reverse("admin:jobs_job_change", args=[job.pk]),
        reverse("admin:jobs_job_changelist"),
        reverse("admin:jobs_job_delete", args=[job.pk]),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200
        assert SECRET not in response.content.decode()
    assert "hooks.example.com" in admin_client.get(pages[0]).content.decode()


def test_posting_to_a_job_page_changes_nothing_and_keeps_its_webhook_secret(admin_client):
    job = JobFactory(webhook_secret=SECRET)
    management_form = {"stage_runs-TOTAL_FORMS": "0", "stage_runs-INITIAL_FORMS": "0", "webhook_secret": ""}
    response = admin_client.post(reverse("admin:jobs_job_change", args=[job.pk]), management_form)
    assert response.status_code == 200  # the ledger: nothing on it is editable
    assert SECRET not in response.content.decode()
    job.refresh_from_db()
    assert job.webhook_secret == SECRET
