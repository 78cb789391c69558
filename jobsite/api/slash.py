"""Answer `/api/` paths without their trailing slash as if it were there."""

from django.urls import Resolver404, resolve


class ApiTrailingSlashMiddleware:
    """Serve `/api/v1/jobs` like `/api/v1/jobs/` instead of redirecting.

    A redirect would turn a client's POST into a GET and lose its body, so the
    slash is added to the path internally when only the slashed path exists.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if path.startswith("/api/") and not path.endswith("/"):
            try:
                resolve(path)
            except Resolver404:
                try:
                    resolve(path + "/")
                except Resolver404:
                    pass
                else:
                    request.path_info = path + "/"
                    request.path = request.path + "/"
        return self.get_response(request)
