"""Authentication endpoints: JWT login/refresh and API-key management."""

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from jobsite.api.authentication import is_service
from jobsite.api.errors import ApiError
from jobsite.api.schema import PRODUCTION_JOB_SYSTEM_TAG
from jobsite.api.throttling import LoginRateThrottle
from jobsite.api.views import GenericViewSet

from .. import selectors, services
from ..models import ApiKey
from .serializers import ApiKeyCreatedSerializer, ApiKeyCreateSerializer, ApiKeySerializer, RefreshSerializer


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class LoginView(TokenObtainPairView):
    """Exchange a username and password for an access and a refresh token."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginRateThrottle]


class RefreshView(TokenRefreshView):
    """Exchange a refresh token for a new access token (and a new refresh token).

    A refresh token issued before its user's password last changed is refused.
    """

    serializer_class = RefreshSerializer
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginRateThrottle]


@extend_schema(tags=["auth", PRODUCTION_JOB_SYSTEM_TAG])
class ApiKeyViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, GenericViewSet):
    """Create, list and revoke your own API keys (with a login, not with another key)."""

    serializer_class = ApiKeySerializer
    lookup_field = "prefix"
    lookup_url_kwarg = "pk"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if is_service(request.user) or isinstance(request.auth, ApiKey):
            raise PermissionDenied("API keys are managed by a logged-in user (JWT or session), not by a key.")

    def get_queryset(self):
        return selectors.api_key_list(user=self.request.user)

    @extend_schema(
        request=ApiKeyCreateSerializer,
        responses={
            201: ApiKeyCreatedSerializer,
            409: OpenApiResponse(description="`api_key_limit_reached`: the user holds `API_KEYS_PER_USER_MAX` keys."),
        },
    )
    def create(self, request):
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            api_key, key = services.api_key_create(user=request.user, **serializer.validated_data)
        except services.ApiKeyError as exc:
            raise ValidationError(exc.errors) from exc
        except services.ApiKeyLimitReached as exc:
            raise ApiError(
                status_code=status.HTTP_409_CONFLICT,
                code="api_key_limit_reached",
                message=str(exc),
                details={"limit": exc.limit},
            ) from exc
        api_key.key = key
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.api_key_revoke(api_key=instance)
