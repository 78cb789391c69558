"""The webhooks endpoints: subscriptions, their deliveries, test sends, secret rotation, redelivery."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from jobsite.api.authentication import is_service
from jobsite.api.errors import ApiError
from jobsite.api.pagination import LimitOffsetPagination
from jobsite.api.views import GenericViewSet

from .. import selectors, services
from ..filters import DeliveryFilter, SubscriptionFilter
from ..models import WebhookDelivery, WebhookSubscription
from .schema import delivery_examples
from .serializers import (
    DeliveryPageSerializer,
    DeliverySerializer,
    RotatedSecretSerializer,
    SubscriptionCreatedSerializer,
    SubscriptionSerializer,
    SubscriptionUpdateSerializer,
    SubscriptionWriteSerializer,
)

ERROR_RESPONSE = OpenApiResponse(description="The error envelope: `{error, message, details, request_id}`.")
UUID_PATTERN = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
# The payload of every event is documented by example on these (one example per event type).
DELIVERIES_PAGE = OpenApiResponse(
    DeliveryPageSerializer,
    description="A page of deliveries; each carries its payload (`{type, timestamp, data}`) and every attempt.",
    examples=delivery_examples(page=True),
)
DELIVERY = OpenApiResponse(
    DeliverySerializer,
    description="The delivery with its payload (`{type, timestamp, data}`) and every attempt.",
    examples=delivery_examples(),
)


def _input_error(exc: services.WebhookInputError) -> ValidationError:
    return ValidationError(exc.errors)


def _check_all_jobs(request, data: dict) -> None:
    if data.get("all_jobs") and not selectors.can_manage_all_webhooks(request.user):
        raise ApiError(
            status_code=status.HTTP_403_FORBIDDEN,
            code="permission_denied",
            message="Only operators and the service may subscribe to every job's events.",
            details={"all_jobs": ["Must be false or omitted."]},
        )


def job_deliveries_response(view, job) -> Response:
    """The page of a job's deliveries the caller may see: `GET /api/v1/jobs/{id}/deliveries/`."""
    deliveries = selectors.deliveries_for_job(job.pk, user=view.request.user)
    paginator = LimitOffsetPagination()  # the deliveries' page, not the jobs list's envelope
    page = paginator.paginate_queryset(deliveries, view.request, view=view)
    return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)


JOB_DELIVERIES_SCHEMA = {
    "summary": "Every webhook delivery of the job, its own callback included, with each attempt",
    "operation_id": "v1_jobs_deliveries_list",
    "responses": {200: DELIVERIES_PAGE, 404: ERROR_RESPONSE},
}


@extend_schema_view(
    list=extend_schema(summary="Your webhook subscriptions (every one for operators)"),
    retrieve=extend_schema(summary="One subscription (never its secret)"),
)
class WebhookSubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Subscribe endpoints to job events; follow, test and replay their deliveries."""

    serializer_class = SubscriptionSerializer
    lookup_value_regex = UUID_PATTERN
    query_params_checked_actions = ("list", "deliveries")
    operation_permissions = {
        "list": "webhooks.view_webhooksubscription",
        "retrieve": "webhooks.view_webhooksubscription",
        "create": "webhooks.add_webhooksubscription",
        "partial_update": "webhooks.change_webhooksubscription",
        "destroy": "webhooks.delete_webhooksubscription",
        "rotate_secret": "webhooks.change_webhooksubscription",
        "test": "webhooks.change_webhooksubscription",
        "deliveries": "webhooks.view_webhookdelivery",
    }

    @property
    def filterset_class(self):
        return DeliveryFilter if getattr(self, "action", None) == "deliveries" else SubscriptionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WebhookSubscription.objects.none()
        return selectors.subscription_list(user=self.request.user)

    def get_serializer_class(self):
        if self.action == "create":
            return SubscriptionWriteSerializer
        if self.action == "partial_update":
            return SubscriptionUpdateSerializer
        return SubscriptionSerializer

    @extend_schema(
        summary="Subscribe an endpoint to job events",
        request=SubscriptionWriteSerializer,
        responses={201: SubscriptionCreatedSerializer, 400: ERROR_RESPONSE, 403: ERROR_RESPONSE},
    )
    def create(self, request):
        serializer = SubscriptionWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        _check_all_jobs(request, data)
        owner = None if is_service(request.user) else request.user
        try:
            subscription, secret = services.webhook_subscription_create(owner=owner, **data)
        except services.WebhookInputError as exc:
            raise _input_error(exc) from exc
        subscription.secret = secret
        return Response(SubscriptionCreatedSerializer(subscription).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a subscription; `is_active: true` re-enables a disabled one",
        request=SubscriptionUpdateSerializer,
        responses={200: SubscriptionSerializer, 400: ERROR_RESPONSE, 404: ERROR_RESPONSE},
    )
    def partial_update(self, request, pk=None):
        subscription = self.get_object()
        serializer = SubscriptionUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        _check_all_jobs(request, data)
        try:
            subscription = services.webhook_subscription_update(subscription=subscription, **data)
        except services.WebhookInputError as exc:
            raise _input_error(exc) from exc
        return Response(SubscriptionSerializer(subscription).data)

    @extend_schema(summary="Delete a subscription and its deliveries", responses={204: None, 404: ERROR_RESPONSE})
    def destroy(self, request, pk=None):
        services.webhook_subscription_delete(subscription=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="A new secret, shown once; for 24 h deliveries are signed with the old one too",
        request=None,
        responses={200: RotatedSecretSerializer, 404: ERROR_RESPONSE},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret", url_name="rotate-secret")
    def rotate_secret(self, request, pk=None):
        subscription, secret = services.webhook_subscription_rotate_secret(subscription=self.get_object())
        return Response(
            {
                "id": subscription.pk,
                "secret": secret,
                "previous_secret_valid_until": subscription.previous_secret_expires_at,
            }
        )

    @extend_schema(
        summary="Send webhook.test now; answers with the attempt's outcome",
        request=None,
        responses={200: DeliverySerializer, 404: ERROR_RESPONSE},
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        delivery = services.webhook_subscription_test(subscription=self.get_object())
        delivery = selectors.deliveries_for_subscription(delivery.subscription).get(pk=delivery.pk)
        return Response(DeliverySerializer(delivery).data)

    @extend_schema(
        summary="The subscription's deliveries, newest first, with each attempt",
        operation_id="v1_webhooks_subscription_deliveries_list",
        responses={200: DELIVERIES_PAGE, 400: ERROR_RESPONSE, 404: ERROR_RESPONSE},
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        # Not get_object(): the view's filters this time are the deliveries'.
        subscription = get_object_or_404(self.get_queryset(), pk=pk)
        deliveries = self.filter_queryset(selectors.deliveries_for_subscription(subscription))
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)


@extend_schema_view(
    list=extend_schema(summary="Deliveries you may see, newest first"),
    retrieve=extend_schema(summary="One delivery with every attempt", responses={200: DELIVERY, 404: ERROR_RESPONSE}),
)
class WebhookDeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Deliveries to your subscriptions and your jobs' callbacks; redeliver one."""

    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilter
    lookup_value_regex = UUID_PATTERN
    operation_permissions = {
        "list": "webhooks.view_webhookdelivery",
        "retrieve": "webhooks.view_webhookdelivery",
        "redeliver": "webhooks.redeliver_webhookdelivery",
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WebhookDelivery.objects.none()
        return selectors.delivery_list(user=self.request.user)

    @extend_schema(
        summary="A new attempt of a delivery, whatever its status (same webhook-id and payload)",
        request=None,
        responses={202: DeliverySerializer, 404: ERROR_RESPONSE, 409: ERROR_RESPONSE},
    )
    @action(detail=True, methods=["post"])
    def redeliver(self, request, pk=None):
        delivery = get_object_or_404(selectors.delivery_list(user=request.user), pk=pk)
        try:
            services.webhook_delivery_redeliver(delivery=delivery)
        except services.DeliveryBusy as exc:
            raise ApiError(status_code=status.HTTP_409_CONFLICT, code="attempt_under_way", message=str(exc)) from exc
        delivery = selectors.delivery_list(user=request.user).get(pk=pk)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
