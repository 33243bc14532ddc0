"""Request counters and a latency histogram, exposed in Prometheus' text format (0.0.4)."""

from __future__ import annotations

import bisect
from collections import Counter

#: latency buckets (seconds), as Prometheus clients use by default plus finer low ones
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """What the server counts. Updated from the event loop only, so no lock is needed."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()  # (method, path, status)
        self.errors: Counter[str] = Counter()  # path of requests answered >= 400
        self.bucket_counts = [0] * (len(BUCKETS) + 1)  # last: +Inf
        self.latency_sum = 0.0
        self.latency_count = 0
        self.predictions = 0  # rows scored
        self.batches = 0  # predict calls
        self.reloads: Counter[str] = Counter()  # "ok" | "refused"

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        self.requests[(method, path, status)] += 1
        if status >= 400:
            self.errors[path] += 1
        if path == "/predict":
            self.bucket_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum += seconds
            self.latency_count += 1

    def render(self, usecase: str, version: str) -> str:
        out: list[str] = []
        out.append("# HELP mlopsctl_requests_total HTTP requests answered, by path and status.")
        out.append("# TYPE mlopsctl_requests_total counter")
        for (method, path, status), n in sorted(self.requests.items()):
            out.append(
                f'mlopsctl_requests_total{{method="{method}",path="{_esc(path)}",'
                f'status="{status}"}} {n}'
            )
        out.append("# HELP mlopsctl_request_errors_total Requests answered with a 4xx or 5xx.")
        out.append("# TYPE mlopsctl_request_errors_total counter")
        for path, n in sorted(self.errors.items()):
            out.append(f'mlopsctl_request_errors_total{{path="{_esc(path)}"}} {n}')
        out.append("# HELP mlopsctl_predict_latency_seconds Time to answer POST /predict.")
        out.append("# TYPE mlopsctl_predict_latency_seconds histogram")
        running = 0
        for bound, n in zip((*BUCKETS, None), self.bucket_counts, strict=True):
            running += n
            le = "+Inf" if bound is None else f"{bound:g}"
            out.append(f'mlopsctl_predict_latency_seconds_bucket{{le="{le}"}} {running}')
        out.append(f"mlopsctl_predict_latency_seconds_sum {self.latency_sum:.6f}")
        out.append(f"mlopsctl_predict_latency_seconds_count {self.latency_count}")
        out.append("# HELP mlopsctl_predictions_total Rows scored.")
        out.append("# TYPE mlopsctl_predictions_total counter")
        out.append(f"mlopsctl_predictions_total {self.predictions}")
        out.append("# HELP mlopsctl_predict_batches_total Predict calls (micro-batches).")
        out.append("# TYPE mlopsctl_predict_batches_total counter")
        out.append(f"mlopsctl_predict_batches_total {self.batches}")
        out.append("# HELP mlopsctl_reloads_total Bundle reloads, loaded or refused.")
        out.append("# TYPE mlopsctl_reloads_total counter")
        for result in ("ok", "refused"):
            out.append(f'mlopsctl_reloads_total{{result="{result}"}} {self.reloads[result]}')
        out.append("# HELP mlopsctl_model_info The model being served.")
        out.append("# TYPE mlopsctl_model_info gauge")
        out.append(f'mlopsctl_model_info{{usecase="{_esc(usecase)}",version="{_esc(version)}"}} 1')
        return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
