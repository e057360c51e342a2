"""PromQL for one color over one window, built from the metric names the apps expose.

Kept apart from the trigger so the exact queries are visible in one place; used by
cutover_kit.measure (the SLO gate and stage 12's baseline) and by stage 1's scrape-target check.
Only API routes count: health checks and Prometheus' own scrapes must not dilute error ratios.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AppMetrics:
    requests_total: str = "http_requests_total"
    duration_histogram: str = "http_request_duration_seconds"
    color_label: str = "color"
    route_matcher: str = 'route=~"/api/.*"'
    scrape_job: str = "apps"

    def selector(self, color: str, *extra: str) -> str:
        matchers = [f'{self.color_label}="{color}"', self.route_matcher, *extra]
        return "{" + ",".join(matchers) + "}"

    def requests(self, color: str, window_seconds: int) -> str:
        return f"sum(increase({self.requests_total}{self.selector(color)}[{window_seconds}s]))"

    def errors(self, color: str, window_seconds: int) -> str:
        # `or vector(0)`: a color that never answered 5xx has no such series at all.
        selector = self.selector(color, 'code=~"5.."')
        return f"sum(increase({self.requests_total}{selector}[{window_seconds}s])) or vector(0)"

    def latency_quantile(self, color: str, quantile: float, window_seconds: int) -> str:
        buckets = f"{self.duration_histogram}_bucket{self.selector(color)}"
        return f"histogram_quantile({quantile}, sum by (le) (rate({buckets}[{window_seconds}s])))"

    def up(self, color: str) -> str:
        return f'max(up{{job="{self.scrape_job}",{self.color_label}="{color}"}})'
