"""Standard Webhooks signatures, made with the `standardwebhooks` library.

`webhook-signature` lists one `v1,<base64 HMAC-SHA256>` per secret, separated
by spaces, so that during a secret rotation a receiver holding either secret
can verify.
"""

from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from .secrets import PREFIX


def signing_key(secret: str) -> str | bytes:
    """What `standardwebhooks.Webhook` takes for a secret.

    A `whsec_` secret is base64; any other string (a job's own
    `webhook_secret` may be anything) is used as raw UTF-8 bytes.
    """
    return secret if secret.startswith(PREFIX) else secret.encode()


def signed_headers(*, msg_id: str, body: str, secrets: list[str], at: datetime | None = None) -> dict[str, str]:
    """The `webhook-id`, `webhook-timestamp` and (with secrets) `webhook-signature` headers for `body`."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp()))}
    signatures = [Webhook(signing_key(secret)).sign(msg_id=msg_id, timestamp=at, data=body) for secret in secrets]
    if signatures:
        headers["webhook-signature"] = " ".join(signatures)
    return headers
