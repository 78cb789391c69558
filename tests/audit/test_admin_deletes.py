"""Deletes made in the admin leave an audit row naming the object, like every other operator action."""

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.models import ApiKey, User
from audit.admin_site import AuditedDeleteMixin
from audit.models import AuditLog
from jobs.models import Job
from pipelines.models import Pipeline
from tests import credentials
from tests.factories import JobFactory, PipelineFactory, UserFactory


def delete_in_admin(client, obj):
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_delete", args=[quote(obj.pk)])
    response = client.post(url, {"post": "yes"})
    assert response.status_code == 302, response.content[:500]


def only_row(**filters) -> AuditLog:
    rows = list(AuditLog.objects.filter(**filters))
    assert len(rows) == 1, rows
    return rows[0]


def test_deleting_a_user_leaves_a_row_naming_them(admin_client, admin_user):
    victim = UserFactory(username="victim")
    delete_in_admin(admin_client, victim)
    assert not User.objects.filter(pk=victim.pk).exists()
    row = only_row(action="admin.user.delete")
    assert (row.principal, row.principal_type, row.user_id) == (admin_user.username, "user", admin_user.pk)
    assert (row.resource_type, row.resource_id) == ("user", str(victim.pk))
    assert row.request_details["operation"] == {"object": "victim"}


def test_deleting_an_api_key_leaves_a_row_naming_it_by_prefix(admin_client, user):
    credentials.api_key_for(user)
    api_key = ApiKey.objects.get(user=user)
    delete_in_admin(admin_client, api_key)
    assert not ApiKey.objects.exists()
    row = only_row(action="admin.api_key.delete")
    assert row.resource_id == api_key.prefix
    assert api_key.hashed_key not in str(row.request_details)


def test_deleting_a_pipeline_leaves_one_row_written_by_its_service(admin_client):
    pipeline = PipelineFactory(name="doomed")
    delete_in_admin(admin_client, pipeline)
    assert not Pipeline.objects.exists()
    row = only_row(resource_type="pipeline")
    assert (row.action, row.resource_id) == ("admin.pipeline.delete", "doomed")


def test_deleting_a_job_leaves_a_row(admin_client):
    job = JobFactory()
    delete_in_admin(admin_client, job)
    assert not Job.objects.exists()
    assert only_row(action="admin.job.delete").resource_id == str(job.pk)


def test_deleting_with_a_third_party_admin_leaves_a_row(admin_client):
    group = Group.objects.create(name="temps")
    delete_in_admin(admin_client, group)
    row = only_row(action="admin.group.delete")
    assert (row.resource_id, row.request_details["operation"]) == (str(group.pk), {"object": "temps"})


def test_the_delete_selected_action_leaves_a_row_per_object(admin_client):
    victims = [UserFactory(username=f"bulk{n}") for n in range(3)]
    response = admin_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_selected", "_selected_action": [str(v.pk) for v in victims], "post": "yes"},
    )
    assert response.status_code == 302
    assert not User.objects.filter(username__startswith="bulk").exists()
    rows = AuditLog.objects.filter(action="admin.user.delete")
    assert sorted(rows.values_list("resource_id", flat=True)) == sorted(str(v.pk) for v in victims)


def test_a_bulk_pipeline_delete_leaves_only_the_services_rows(admin_client):
    pipelines = [PipelineFactory(name=f"bulk-{n}") for n in range(2)]
    admin_client.post(
        reverse("admin:pipelines_pipeline_changelist"),
        {"action": "delete_selected", "_selected_action": [p.pk for p in pipelines], "post": "yes"},
    )
    assert sorted(AuditLog.objects.values_list("action", "resource_id")) == [
        ("admin.pipeline.delete", "bulk-0"),
        ("admin.pipeline.delete", "bulk-1"),
    ]


def test_a_delete_whose_row_cannot_be_written_does_not_happen(admin_client, monkeypatch):
    from audit import services

    def broken(**kwargs):
        raise RuntimeError("audit insert failed")

    monkeypatch.setattr(services, "audit_record", broken)
    victim = UserFactory(username="survivor")
    with pytest.raises(RuntimeError):
        delete_in_admin(admin_client, victim)
    assert User.objects.filter(pk=victim.pk).exists()


def test_every_admin_that_can_delete_is_audited(admin_user, rf):
    request = rf.get("/admin/")
    request.user = admin_user
    deleting = [m for m, model_admin in admin.site._registry.items() if model_admin.has_delete_permission(request)]
    assert User in deleting and Group in deleting
    assert all(isinstance(admin.site._registry[m], AuditedDeleteMixin) for m in deleting)
