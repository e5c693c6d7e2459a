"""Server-side SVG charts (no JavaScript, no CDN): points for a polyline over a series
(versions of a dataset, evaluations of a model, a training loss curve)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Sparkline:
    points: str
    width: int
    height: int
    last: float
    low: float
    high: float


def sparkline(values: list[float], *, width: int = 160, height: int = 36, pad: int = 3):
    """Scale `values` into an SVG polyline's points; None when there are fewer than 2 values."""
    if len(values) < 2:
        return None
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (width - 2 * pad) / (len(values) - 1)
    points = " ".join(
        f"{pad + i * step:.1f},{height - pad - (v - low) / span * (height - 2 * pad):.1f}"
        for i, v in enumerate(values)
    )
    return Sparkline(points=points, width=width, height=height, last=values[-1], low=low, high=high)
