"""The surfaces of the services jobsite replaces, served so that their clients work unchanged.

One module per contract (see the README's "Coming from ..." sections):

- :mod:`.llm_workflow`: the LLM workflow service (seeds 000/001): `GET /api/v1/status/{job_id}`,
  `POST /api/v1/workflow`, `POST /api/v1/workflow/validate`; its `GET /api/v1/jobs` is jobsite's own list.
- :mod:`.tasks`: the task API (seed 003): `/tasks`.
- :mod:`.starter`: the starter job API (seed 004): `/jobs`.

The production job system (seed 002) is served by jobsite's own endpoints.
Each module only translates names, statuses and error bodies: submitting,
listing, cancelling and retrying go through the same services, selectors,
filters and permissions as jobsite's own API.
"""
