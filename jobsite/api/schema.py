"""OpenAPI descriptions of jobsite's own authentication schemes (drf-spectacular)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

# The tag of the endpoints that serve the production job system's contract (seed 002).
PRODUCTION_JOB_SYSTEM_TAG = "Production job system (seed 002)"


class ApiSecretScheme(OpenApiAuthenticationExtension):
    target_class = "jobsite.api.authentication.ApiSecretAuthentication"
    name = "ApiSecret"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Secret",
            "description": "The shared secret of the trusted service principal (JOBSITE_API_SECRET, or "
            "LLM_WEBHOOK_SECRET when that is unset).",
        }


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "jobsite.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "A user's API key; `Authorization: Api-Key <key>` works too.",
        }
