"""Base classes for jobsite's API views."""

from rest_framework import exceptions, viewsets


class ThrottledFirstMixin:
    """Apply rate limits before authentication failures and permission checks.

    DRF checks permissions before throttles, and a failed authentication stops
    the request before either, so callers guessing credentials would never be
    slowed down. Here a failed authentication is counted against the caller's
    anonymous (per-IP) bucket, and throttles run before permissions.
    """

    def initial(self, request, *args, **kwargs):
        self.format_kwarg = self.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(request)
        request.version, request.versioning_scheme = self.determine_version(request, *args, **kwargs)
        try:
            self.perform_authentication(request)
        except exceptions.AuthenticationFailed:
            self.check_throttles(request)
            raise
        self.check_throttles(request)
        self.check_permissions(request)


class GenericViewSet(ThrottledFirstMixin, viewsets.GenericViewSet):
    """The base of every jobsite viewset."""
