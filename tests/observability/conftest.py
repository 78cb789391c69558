"""Reading Prometheus's text format back, for the observability tests."""

from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

# Every label name jobsite's metrics use: none can carry a job, a user or a path.
ALLOWED_LABELS = {"pipeline", "queue", "outcome", "stage_type", "route", "method", "status", "le"}

SCRAPE_TOKEN = "scrape-token-0123456789abcdef"


@dataclass
class Scrape:
    samples: list  # prometheus_client Sample tuples (name, labels, value, ...)

    @classmethod
    def parse(cls, text: str) -> "Scrape":
        return cls([s for family in text_string_to_metric_families(text) for s in family.samples])

    def value(self, name: str, **labels) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 when there is none)."""
        return sum(s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items())

    def has(self, name: str, **labels) -> bool:
        return any(s.name == name and labels.items() <= s.labels.items() for s in self.samples)

    def jobsite_label_names(self) -> set[str]:
        return {key for s in self.samples if s.name.startswith("jobsite_") for key in s.labels}

    def jobsite_label_values(self) -> set[str]:
        return {value for s in self.samples if s.name.startswith("jobsite_") for value in s.labels.values()}


@pytest.fixture
def scrape_token(settings):
    settings.METRICS_TOKENS = [SCRAPE_TOKEN]
    return SCRAPE_TOKEN
