"""Plots logged with a training run, written as SVG text.

A bar chart is a few rectangles: drawing it by hand costs microseconds, where matplotlib's import
and rendering cost about 0.5 s of every model step (docs/benchmarks.md). MLflow's UI previews
`.svg` artifacts as images, like `.png`.
"""

from html import escape

BAR_HEIGHT = 18
BAR_GAP = 6
LABEL_WIDTH = 220
PLOT_WIDTH = 360
MARGIN = 12
TITLE_HEIGHT = 28
AXIS_HEIGHT = 34
TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def feature_importance_svg(model: str, importance: dict[str, float]) -> str:
    """A horizontal bar chart of each feature's share of the model's total gain, largest at the
    top, scaled to the largest share; an SVG document."""
    bars = sorted(importance.items(), key=lambda kv: (-kv[1], kv[0]))
    largest = max((share for _, share in bars), default=0.0) or 1.0
    x0 = MARGIN + LABEL_WIDTH
    axis_y = TITLE_HEIGHT + len(bars) * (BAR_HEIGHT + BAR_GAP)
    width, height = x0 + PLOT_WIDTH + MARGIN * 4, axis_y + AXIS_HEIGHT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">'
        f"{escape(model)}: feature importance</text>",
    ]
    for row, (feature, share) in enumerate(bars):
        y = TITLE_HEIGHT + row * (BAR_HEIGHT + BAR_GAP)
        length = PLOT_WIDTH * share / largest
        parts += [
            f'<text x="{x0 - 6}" y="{y + BAR_HEIGHT - 5}" text-anchor="end">'
            f"{escape(feature)}</text>",
            f'<rect x="{x0}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT}" fill="#1f77b4">'
            f"<title>{escape(feature)}: {share:.4f}</title></rect>",
            f'<text x="{x0 + length + 4:.1f}" y="{y + BAR_HEIGHT - 5}" fill="#444">'
            f"{share:.3f}</text>",
        ]
    parts.append(
        f'<line x1="{x0}" y1="{axis_y}" x2="{x0 + PLOT_WIDTH}" y2="{axis_y}" stroke="#444"/>'
    )
    for tick in TICKS:
        x = x0 + PLOT_WIDTH * tick
        parts.append(
            f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" fill="#444">'
            f"{largest * tick:.2f}</text>"
        )
    parts.append(
        f'<text x="{x0 + PLOT_WIDTH / 2}" y="{axis_y + 30}" text-anchor="middle">'
        "share of total gain</text></svg>"
    )
    return "\n".join(parts)
