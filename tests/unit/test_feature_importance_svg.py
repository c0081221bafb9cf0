"""The feature importance chart logged with every training run: a well-formed SVG document whose
bars follow the shares, largest first, and whose text is escaped."""

import xml.etree.ElementTree as ET

from ml_assets.models.plots import PLOT_WIDTH, feature_importance_svg

SVG = "{http://www.w3.org/2000/svg}"


def _bars(svg: str) -> list[tuple[str, float]]:
    root = ET.fromstring(svg)
    return [
        (rect.find(f"{SVG}title").text.split(":")[0], float(rect.get("width")))
        for rect in root.iter(f"{SVG}rect")
        if rect.find(f"{SVG}title") is not None
    ]


def test_bars_are_ordered_by_share_and_scaled_to_the_largest():
    svg = feature_importance_svg("fraud", {"amount": 0.2, "velocity_1h": 0.5, "age": 0.3})
    bars = _bars(svg)
    assert [name for name, _ in bars] == ["velocity_1h", "age", "amount"]
    widths = dict(bars)
    assert widths["velocity_1h"] == PLOT_WIDTH
    assert abs(widths["amount"] / widths["velocity_1h"] - 0.4) < 1e-3
    assert "fraud: feature importance" in svg


def test_names_are_escaped_and_the_document_stays_well_formed():
    svg = feature_importance_svg("a<b>&c", {"x<y": 1.0, 'q"&': 0.0})
    bars = _bars(svg)  # parses: nothing unescaped broke the XML
    assert {name for name, _ in bars} == {"x<y", 'q"&'}
    assert dict(bars)['q"&'] == 0.0


def test_a_model_without_gain_draws_an_empty_chart():
    bars = _bars(feature_importance_svg("m", {"a": 0.0, "b": 0.0}))
    assert [width for _, width in bars] == [0.0, 0.0]
