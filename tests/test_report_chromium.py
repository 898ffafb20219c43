"""Both pages rendered in headless Chromium and read back from the DOM (issue 18): every
normalised metric's ceiling is 1 or empty, every figure has a caption, subject links resolve.
Skipped without Debian's chromium (``apt-get install -y chromium``)."""
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from neuroattn.leaderboard import NORMALISED, gather, score_row, write_scores
from neuroattn.report.group import build_group_report
from neuroattn.report.subject import build_subject_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CONFIG = {"seed": 0, "device": "cpu", "fmri": {"bids_root": ""}, "eeg": {"bids_root": ""}, "report": {"n_examples": 2}}
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")


class DomTables(HTMLParser):
    """Tables (with the nearest heading before them), figures and links of a rendered DOM."""

    def __init__(self):
        super().__init__()
        self.tables, self.figures, self.links = [], [], []
        self._heading, self._in_h, self._cell, self._row, self._fig = "", False, None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("h2", "h3"):
            self._in_h, self._heading = True, ""
        elif tag == "table":
            self.tables.append({"heading": self._heading, "rows": []})
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "figure":
            self._fig = {"img": False, "caption": ""}
        elif tag == "img" and self._fig is not None:
            self._fig["img"] = bool(a.get("src"))
        elif tag == "figcaption" and self._fig is not None:
            self._fig["in_caption"] = True
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def handle_endtag(self, tag):
        if tag in ("h2", "h3"):
            self._in_h = False
        elif tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            self.tables[-1]["rows"].append(self._row)
            self._row = None
        elif tag == "figcaption" and self._fig is not None:
            self._fig["in_caption"] = False
        elif tag == "figure" and self._fig is not None:
            self.figures.append(self._fig)
            self._fig = None

    def handle_data(self, data):
        if self._in_h:
            self._heading += data
        if self._cell is not None:
            self._cell += data
        if self._fig is not None and self._fig.get("in_caption"):
            self._fig["caption"] += data


def dom(page: Path, tmp_path: Path) -> DomTables:
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()]
    proc = subprocess.run(flags, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    p = DomTables()
    p.feed(proc.stdout)
    return p


def normalised_ceilings(p: DomTables) -> list[str]:
    """Every ceiling cell shown for a normalised metric: in tables with a metric column (a row's
    metric), or in tables headed by a normalised metric (the ranked summary)."""
    out = []
    for t in p.tables:
        if not t["rows"] or "ceiling" not in t["rows"][0]:
            continue
        cols = t["rows"][0]
        ci = cols.index("ceiling")
        mi = cols.index("metric") if "metric" in cols else None
        for row in t["rows"][1:]:
            metric = row[mi] if mi is not None else next((m for m in NORMALISED if m in t["heading"]), None)
            if metric in NORMALISED:
                out.append(row[ci])
    return out


@pytest.fixture
def results(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for s in ["01", "02", "03"]:
        for model in ["routing", "ridge_grid"]:
            for roi in ["ret_V1", "cat_face"]:
                # a raw variance ceiling handed in (as stages did before): the page must not show it
                rows.append(score_row(s, "fmri", model, roi, "noise_normalized_r2", rng.uniform(0.3, 0.8),
                                      ceiling=0.55, n=40))
                rows.append(score_row(s, "fmri", model, roi, "pearson_r", rng.uniform(0.3, 0.6), ceiling=0.74, n=40))
        rows.append(score_row(s, "fmri", "net_committed", "ret_V1", "ceiled_ev", 0.6, ceiling=0.55, n=40))
        rows.append(score_row(s, "fmri", "incontext_k10", "all", "top1", rng.uniform(0, 0.3), n=50))
        rows.append(score_row(s, "eeg", "basenet", "within", "accuracy", rng.uniform(0.4, 0.8), n=96, n_classes=4))
    write_scores(tmp_path / "rows.tsv", rows)
    (tmp_path / "scores").mkdir()
    lb = tmp_path / "scores" / "leaderboard.tsv"
    gather([tmp_path / "rows.tsv"], lb)
    build_group_report(tmp_path / "report.html", lb, CONFIG, configfiles=["config/config.yaml"])
    from neuroattn.data.volumes import to_volume, write_nifti

    ijk = np.array([[2, 3, 4], [5, 5, 5], [6, 7, 3]])
    vmap = tmp_path / "sub-01_backbone-b_layer-layer3_model-routing_stat-r_statmap.nii.gz"
    write_nifti(to_volume([0.4, 0.2, -0.1], ijk, (10, 12, 9), np.diag([8.0, 8.0, 8.0, 1.0])), vmap)
    for s in ["01", "02", "03"]:
        (tmp_path / f"sub-{s}").mkdir()
        build_subject_report(tmp_path / f"sub-{s}" / "report.html", s, lb, CONFIG, configfiles=["config/config.yaml"],
                             voxel_maps=[vmap] if s == "01" else ())
    return tmp_path


def test_group_and_subject_pages_in_chromium(results, tmp_path):
    group = dom(results / "report.html", tmp_path)
    sub = dom(results / "sub-01" / "report.html", tmp_path)
    for p in (group, sub):
        ceilings = normalised_ceilings(p)
        assert ceilings, "no normalised-metric ceiling cell found on the page"
        assert set(ceilings) <= {"", "1.000", "1"}, sorted(set(ceilings))
        assert p.figures and all(f["img"] and f["caption"].strip() for f in p.figures), p.figures
    subject_links = [h for h in group.links if h.startswith("sub-")]
    assert sorted(subject_links) == [f"sub-{s}/report.html" for s in ("01", "02", "03")]
    for href in group.links:
        if not urlparse(href).scheme and not href.startswith("#"):
            assert (results / unquote(href)).is_file(), f"group page link {href} does not resolve"
    assert "../report.html" in sub.links and (results / "sub-01" / "../report.html").resolve().is_file()
    brain = [f for f in sub.figures if "voxelwise Pearson r" in f["caption"]]
    assert len(brain) == 1 and brain[0]["caption"].startswith("routing (layer3)") and "colour bar" in brain[0]["caption"]


def _page_width(page: Path, tmp_path: Path) -> int:
    """The rendered page's scroll width in a 1000 px wide window (a script writes it into the DOM)."""
    html = page.read_text().replace(
        "</body>", "<script>document.body.setAttribute('data-sw', document.documentElement.scrollWidth)</script></body>")
    probe = page.with_name("probe.html")
    probe.write_text(html)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1000,800",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()]
    out = subprocess.run(flags, capture_output=True, text=True, timeout=180).stdout
    import re

    return int(re.search(r'data-sw="(\d+)"', out).group(1))


def test_wide_tables_scroll_inside_the_page(tmp_path):
    """A 40-column table stays inside a 1000 px window; without the scroll box it widens the page."""
    from neuroattn.report.html import render_page

    wide = {"columns": [f"column_{i:02d}" for i in range(40)], "rows": [[f"value {i} long text" for i in range(40)]]}
    page = tmp_path / "wide.html"
    html = render_page(page, title="wide", sections=[{"title": "t", "table": wide}])
    assert _page_width(page, tmp_path) <= 1000
    page.write_text(html.replace('<div class="scroll">', "<div>"))
    assert _page_width(page, tmp_path) > 2000  # the check can fail: the bare table overflows the page


def test_the_check_fails_on_a_raw_ceiling(results, tmp_path):
    """The check can fail: a page showing a raw variance ceiling (0.55) for noise_normalized_r2 is caught."""
    page = results / "report.html"
    html = page.read_text()
    i = html.index("noise_normalized_r2</h3>")
    j = html.index("<td>1.000</td>", i)
    (results / "bad.html").write_text(html[:j] + "<td>0.550</td>" + html[j + len("<td>1.000</td>"):])
    assert "0.550" in normalised_ceilings(dom(results / "bad.html", tmp_path))
