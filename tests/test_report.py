"""Reports: escaping, self-containment, and rendering in headless Chromium."""
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from neuroattn.leaderboard import score_row, write_scores
from neuroattn.report.group import build_group_report
from neuroattn.report.html import render_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CONFIG = {"seed": 0, "device": "cpu", "fmri": {"bids_root": ""}, "eeg": {"bids_root": ""}, "report": {"n_examples": 2}}


@pytest.fixture
def leaderboard(tmp_path):
    rows = []
    rng = np.random.default_rng(0)
    for s in ["01", "02"]:
        for model in ["routing", "ridge_pooled"]:
            for roi in ["ret_V1", "cat_<b>face</b>"]:
                rows.append(score_row(s, "fmri", model, roi, "noise_normalized_r2", rng.uniform(0, 0.6), ceiling=0.7, n=40))
        for k in [10, 20]:
            rows.append(score_row(s, "fmri", f"incontext_k{k}", "all", "top1", rng.uniform(0, 0.3), n=50))
            rows.append(score_row(s, "fmri", f"ridge_context_k{k}", "all", "top1", rng.uniform(0, 0.2), n=50))
        rows.append(score_row(s, "eeg", "basenet", "within", "accuracy", rng.uniform(0.4, 0.8), error=0.02, n=96))
    path = tmp_path / "leaderboard.tsv"
    write_scores(path, rows)
    return path


def test_page_escapes_names_and_is_self_contained(tmp_path):
    html = render_page(tmp_path / "p.html", title="sub-<x>", sections=[
        {"title": "<script>alert(1)</script>", "text": "a & b",
         "table": {"columns": ["roi"], "rows": [["<img src=x onerror=alert(1)>"]]}}],
        provenance={"path": "/data/<evil>"})
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;evil&gt;" in html and "a &amp; b" in html


def test_group_report_embeds_figures_and_lists_scores(tmp_path, leaderboard):
    out = tmp_path / "report.html"
    build_group_report(out, leaderboard, CONFIG)
    html = out.read_text()
    assert html.count("data:image/png;base64,") >= 3
    assert not re.search(r'src="(https?:)?//', html), "external resources in a self-contained page"
    assert "cat_&lt;b&gt;face&lt;/b&gt;" in html and "<b>face</b>" not in html
    assert "Cross-subject decoding vs context size" in html
    assert "18 rows" in html  # 2 subjects x (4 fMRI + 4 decoding + 1 EEG) rows


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_group_report_renders_in_headless_chromium(tmp_path, leaderboard):
    out = tmp_path / "report.html"
    build_group_report(out, leaderboard, CONFIG)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(flags + ["--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<h1>neuroattn: group report</h1>" in dom.stdout
    assert dom.stdout.count("<img") >= 3
    shot = tmp_path / "shot.png"
    proc = subprocess.run(flags + ["--window-size=1000,1400", f"--screenshot={shot}", out.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file()
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (1400, 1000)
    assert img.std() > 10, "the screenshot is blank"


def test_routing_truth_section_shows_value_and_reference(tmp_path):
    from neuroattn.report.subject import _routing_truth_section

    p = tmp_path / "sub-01_backbone-b_layer-l_model-routing_desc-truthcheck.tsv"
    pd.DataFrame({"query": ["ret_V1.lh", "ret_V1.lh"], "measure": ["attention_r", "voxel_peak_distance"],
                  "value": [0.5, 1.25], "reference": [0.0, 1.1], "n": [None, 12]}).to_csv(p, sep="\t", index=False)
    sec = _routing_truth_section([p])
    t = sec["table"]
    assert t["columns"] == ["layer", "query", "attention_r", "voxel_peak_distance"]
    assert t["rows"] == [["l", "ret_V1.lh", "0.50 (0.00)", "1.25 (1.10)"]]


def test_group_routing_truth_section_takes_medians_over_subjects(tmp_path):
    from neuroattn.report.group import routing_truth_section

    paths = []
    for s, (a, b) in enumerate([(1.0, 3.0), (2.0, 4.0)]):
        p = tmp_path / f"sub-0{s}.tsv"
        pd.DataFrame({"query": ["ret_V1.lh", "ret_V2.lh", "cat_a.lh"], "measure": ["voxel_peak_distance"] * 3,
                      "value": [a, b, 9.0], "reference": [1.0, 1.0, 1.0]}).to_csv(p, sep="\t", index=False)
        paths.append(p)
    rows = {r[0]: r for r in routing_truth_section(paths)["table"]["rows"]}
    assert rows["ret_*"][2] == "2.500"  # subject medians 2.0 and 3.0 -> 2.5
    assert rows["cat_*"][2] == "9.000" and rows["cat_*"][-1] == "2"


def test_topomap_values_follow_channel_names_when_a_middle_channel_is_missing(monkeypatch):
    """The old ``values[:len(picks)]`` drew Cz's value on Pz and Pz's on Oz when Cz was missing."""
    mne = pytest.importorskip("mne")
    from neuroattn.report import subject

    montage_chs = ["Fz", "Pz", "Oz"]          # the epochs lack "Cz", a middle channel of the model's list
    info = mne.create_info(montage_chs, 250.0, "eeg")
    info.set_montage(mne.channels.make_standard_montage("standard_1020"))
    model_chs = ["Fz", "Cz", "Pz", "Oz"]
    imp = np.array([[1.0, 2.0, 3.0, 4.0]])
    drawn = []
    monkeypatch.setattr(mne.viz, "plot_topomap", lambda values, *a, **k: drawn.append(np.asarray(values)))
    subject._topomaps(imp, model_chs, ["left"], info, "t")
    np.testing.assert_array_equal(drawn[0], [1.0, 3.0, 4.0])   # Fz, Pz, Oz; not [1, 2, 3]


def test_group_page_opens_with_provenance_links_subjects_and_ranks(tmp_path):
    """Issue 18: what produced the page first, subject links, a ranked mean +- SEM summary, the TSV linked."""
    from neuroattn.leaderboard import gather

    rows = []
    vals = {"routing": [0.5, 0.7], "ridge_pooled": [0.2, 0.3]}
    for i, s in enumerate(["01", "02"]):
        for model, v in vals.items():
            rows.append(score_row(s, "fmri", model, "ret_V1", "noise_normalized_r2", v[i], ceiling=0.6, n=40))
        rows.append(score_row(s, "fmri", "incontext_k10", "all", "top1", 0.1, n=50))
    write_scores(tmp_path / "part.tsv", rows)
    (tmp_path / "scores").mkdir()
    lb = tmp_path / "scores" / "leaderboard.tsv"
    gather([tmp_path / "part.tsv"], lb)
    out = tmp_path / "report.html"
    html = build_group_report(out, lb, CONFIG, configfiles=["config/config.yaml", "my.yaml"])
    head = html[html.index("<h1>"):html.index("<nav>")]
    for key in ("fMRI data", "simulated", "built", "git commit", "command", "config/config.yaml, my.yaml", "device"):
        assert key in head, key
    assert "<td>cpu" in head  # the device used, not the config's 'auto'
    assert 'href="sub-01/report.html"' in html and 'href="sub-02/report.html"' in html
    assert 'href="scores/leaderboard.tsv"' in html
    assert "<td>incontext_k10</td><td>all</td>" not in html  # the leaderboard is linked, not inlined
    assert "overflow-x: auto" in html and html.count('<div class="scroll">') >= 2
    summary = html[html.index("Ranked summary"):]
    first = summary.index("<td>routing</td>")
    assert first < summary.index("<td>ridge_pooled</td>")  # ranked by the mean
    sem = np.std([0.5, 0.7], ddof=1) / np.sqrt(2)
    assert f"<td>{0.6:.3f} ± {sem:.3f}</td>" in summary  # mean +- SEM over subjects
    assert f"<td>{1 / 50:.3f}</td>" in summary  # top1 chance 1/n_candidates


def test_subject_page_opens_with_provenance_and_links_the_group_page(tmp_path, leaderboard):
    from neuroattn.report.subject import build_subject_report

    out = tmp_path / "sub-01" / "report.html"
    out.parent.mkdir()
    html = build_subject_report(out, "01", leaderboard, CONFIG, configfiles=["config/config.yaml"])
    assert html.index("git commit") < html.index("<nav>")
    assert 'href="../report.html"' in html


def test_one_colour_per_model_on_every_plot():
    from neuroattn.report.figures import _colours, metric_bars, model_colour

    assert model_colour("incontext_k50") == model_colour("incontext_k10") != model_colour("ridge_context_k50")
    assert model_colour("routing") != model_colour("ridge_grid")
    names = [f"net{i}_committed" for i in range(12)] + ["routing"]
    assert len(set(_colours(names).values())) == len(names)  # no two models share a colour in one plot
    rows = pd.DataFrame([score_row("01", "fmri", m, "V1", "pearson_r", 0.3) for m in ("routing", "ridge_grid")])
    fig = metric_bars(rows, "pearson_r")
    from matplotlib.container import BarContainer

    bars = {p.get_label(): p.patches[0].get_facecolor()[:3] for p in fig.axes[0].containers
            if isinstance(p, BarContainer)}
    assert np.allclose(bars["routing"], model_colour("routing")) and np.allclose(bars["ridge_grid"], model_colour("ridge_grid"))
    leg = fig.axes[0].get_legend()
    assert leg.get_bbox_to_anchor().x0 > fig.axes[0].get_window_extent().x1 - 1  # legend right of the axes


def test_header_lists_each_config_file_once_in_merge_order():
    from neuroattn.report.summary import REPO, _config_files

    got = _config_files([str(REPO / "config/config.yaml"), str(REPO / "config/tiny.yaml"), "/tmp/x/overlay.yaml",
                         "config/config.yaml"])  # snakemake repeats the Snakefile's configfile
    assert got == ["config/config.yaml", "config/tiny.yaml", "/tmp/x/overlay.yaml"]
