"""Page rendering: Jinja2 with autoescaping, figures embedded as data URIs."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import jinja2

from ..utils import atomic_path

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("neuroattn.report", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def fig_to_uri(fig, dpi: int = 110) -> str:
    """Encode a matplotlib figure as a ``data:image/png;base64,...`` URI and close it (110 dpi: small text stays legible)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_page(path: str | Path, *, title: str, sections: list[dict], provenance: dict | None = None,
                header: dict | None = None) -> str:
    """Render one self-contained page and write it atomically.

    Parameters
    ----------
    path : str or Path
        Output HTML file.
    title : str
        Page title (escaped).
    sections : list of dict
        Each has ``title`` and any of ``text`` (str), ``note`` (str), ``figures`` (list of
        {"uri", "caption"}), ``table`` ({"columns": [...], "rows": [[...], ...]}), ``tables``
        (list of {"title", "table"}), ``links`` (list of {"href", "text"}). Tables scroll
        sideways inside the page when wider than it.
    provenance : dict, optional
        Key/value pairs shown at the end of the page.
    header : dict, optional
        Key/value pairs shown first, under the title (what produced the page:
        :func:`neuroattn.report.summary.page_header`).
    """
    html = _ENV.get_template("page.html").render(title=title, sections=sections, provenance=provenance or {},
                                                 header=header or {})
    with atomic_path(path) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return html


def table(df, float_format="{:.3f}") -> dict:
    """A pandas DataFrame as the ``table`` entry of a section (values formatted, escaped later)."""
    def fmt(v):
        if isinstance(v, float):
            return "" if v != v else float_format.format(v)
        return "" if v is None else str(v)

    return {"columns": [str(c) for c in df.columns], "rows": [[fmt(v) for v in row] for row in df.itertuples(index=False)]}
