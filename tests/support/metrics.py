"""A /metrics page as the tests read it: parsed by prometheus-client's own parser.

scrape = Scrape(await response.text())
scrape.value("lightning_wallet_http_requests_total", route="/healthz")  # sum over the other labels
scrape.label_values("lightning_wallet_http_requests_total", "route")    # {"/healthz", ...}
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = [sample for family in self.families.values() for sample in family.samples]

    def matching(self, name: str, **labels: str) -> list:
        return [
            s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels`` (0.0 when none)."""
        return sum(sample.value for sample in self.matching(name, **labels))

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}
