"""Base classes for jobsite's API views."""

from rest_framework import exceptions, viewsets
from rest_framework.settings import api_settings

from .validation import unstorable_text

# Attributes of DRF filter backends and paginators that name a query parameter.
_BACKEND_PARAMS = ("ordering_param", "search_param")
_PAGINATOR_PARAMS = (
    "limit_query_param",
    "offset_query_param",
    "page_query_param",
    "page_size_query_param",
    "cursor_query_param",
)


class UnknownQueryParameters(exceptions.ValidationError):
    """A query parameter the view does not understand (a 400 on every surface, whatever its contract)."""


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


class KnownQueryParamsMixin:
    """Refuse query parameters a list does not understand (400), instead of ignoring them.

    A misspelt filter that is ignored returns everything, which a client cannot
    tell from a match. Accepted: the fields of the view's FilterSet (and the
    `ordering`/`search` parameters of any DRF filter backend), the paginator's
    parameters, `format`, and the view's own `extra_query_params`.
    """

    # Parameters a view reads itself, beyond its filters and pagination.
    extra_query_params: tuple[str, ...] = ()
    # The actions whose query parameters are checked.
    query_params_checked_actions: tuple[str, ...] = ("list",)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, throttles and permissions first
        if getattr(self, "action", None) in self.query_params_checked_actions:
            self.check_query_params(request)

    def accepted_query_params(self) -> set[str]:
        """Every query parameter this view's current action understands."""
        accepted = {api_settings.URL_FORMAT_OVERRIDE, *self.extra_query_params} - {None}
        for backend_class in getattr(self, "filter_backends", ()):
            backend = backend_class()
            accepted.update(filter(None, (getattr(backend, name, None) for name in _BACKEND_PARAMS)))
            if hasattr(backend, "get_filterset_class"):
                # The class-level queryset only: get_queryset() may depend on a caller not yet vetted.
                filterset_class = backend.get_filterset_class(self, getattr(self, "queryset", None))
                if filterset_class is not None:
                    accepted.update(_filterset_params(filterset_class))
        paginator = getattr(self, "paginator", None)
        if paginator is not None:
            accepted.update(filter(None, (getattr(paginator, name, None) for name in _PAGINATOR_PARAMS)))
        return accepted

    def check_query_params(self, request) -> None:
        accepted = self.accepted_query_params()
        unknown = sorted(set(request.query_params) - accepted)
        if unknown:
            valid = sorted(accepted)
            message = f"Unknown query parameter. Accepted parameters: {', '.join(valid)}."
            raise UnknownQueryParameters({**{name: [message] for name in unknown}, "valid_parameters": valid})


def _filterset_params(filterset_class) -> set[str]:
    """A FilterSet's query parameters, including the suffixed ones of range widgets (`x_after`, `x_min`)."""
    params = set()
    for name, filter_ in filterset_class.base_filters.items():
        widget = filter_.extra.get("widget") or filter_.field_class.widget
        suffixes = getattr(widget, "suffixes", None)
        if suffixes:
            params.update(f"{name}_{suffix}" if suffix else name for suffix in suffixes)
        else:
            params.add(name)
    return params


class GenericViewSet(KnownQueryParamsMixin, ThrottledFirstMixin, viewsets.GenericViewSet):
    """The base of every jobsite viewset with a model behind it."""

    def get_object(self):
        # No object is named with text the database cannot hold; PostgreSQL
        # would refuse the lookup itself (a 503), where the answer is a 404.
        lookup = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field)
        if isinstance(lookup, str) and unstorable_text(lookup):
            raise exceptions.NotFound()
        return super().get_object()


class ViewSet(KnownQueryParamsMixin, ThrottledFirstMixin, viewsets.ViewSet):
    """The base of every jobsite viewset without one."""
