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


# ---------------------------------------------------------------- issue 18: figures that explain themselves
def _voxel_fixture(tmp_path):
    """A 3-voxel beta file on an 8 mm grid and one encoder prediction file with known per-voxel r."""
    import h5py

    from neuroattn.data.betas import Betas

    ijk = np.array([[2, 3, 4], [5, 5, 5], [6, 7, 3]], dtype=np.int32)
    b = Betas(subject="01", trial_betas=np.zeros((4, 3)), trial_image=["a.png", "a.png", "b.png", "b.png"],
              voxel_roi=["V1", "V1", "V2"], voxel_ijk=ijk, affine=np.diag([8.0, 8.0, 8.0, 1.0]), shape=(10, 12, 9))
    b.write(tmp_path / "betas.h5")
    r = np.array([0.3, -0.1, np.nan], dtype=np.float32)
    with h5py.File(tmp_path / "pred.h5", "w") as f:
        f.create_dataset("pearson_r", data=r)
        f.create_dataset("voxel_index", data=np.arange(3, dtype=np.int32))
    return ijk, r


def test_voxel_maps_stage_puts_each_voxels_r_at_its_place(tmp_path):
    nib = pytest.importorskip("nibabel")
    from neuroattn.stages.scoring import voxel_maps

    ijk, r = _voxel_fixture(tmp_path)
    out = tmp_path / "sub-01_backbone-b_layer-l_model-routing_stat-r_statmap.nii.gz"
    voxel_maps(str(tmp_path / "betas.h5"), [str(tmp_path / "pred.h5")], [str(out)], str(tmp_path / "ref.nii.gz"),
               bids_root="", subject="01", task="t", format="nsd")  # nsd: no bold runs, the mask is the reference
    img = nib.load(out)
    d = np.asarray(img.dataobj)
    assert d.shape == (10, 12, 9) and np.allclose(img.affine, np.diag([8.0, 8.0, 8.0, 1.0]))
    assert d[2, 3, 4] == pytest.approx(0.3) and d[5, 5, 5] == pytest.approx(-0.1)
    assert d[6, 7, 3] == 0 and np.count_nonzero(d) == 2  # NaN r and unscored voxels: 0 (transparent)
    ref = np.asarray(nib.load(tmp_path / "ref.nii.gz").dataobj)
    assert ref.sum() == 3 and ref[6, 7, 3] == 1
    with pytest.raises(ValueError, match="1 prediction files for 2 map outputs"):
        voxel_maps(str(tmp_path / "betas.h5"), [str(tmp_path / "pred.h5")], [str(out), str(out)], str(tmp_path / "r.nii.gz"),
                   bids_root="", subject="01", task="t", format="nsd")


def test_brain_map_section_has_a_caption_and_a_colour_bar_per_encoder(tmp_path):
    from neuroattn.data.volumes import to_volume, write_nifti
    from neuroattn.report.brain_maps import brain_map_section
    from neuroattn.report.figures import brain_map

    ijk = np.array([[2, 3, 4], [5, 5, 5], [6, 7, 3]])
    aff = np.diag([8.0, 8.0, 8.0, 1.0])
    paths = []
    for model, r in (("routing", [0.4, 0.2, 0.1]), ("ridge_grid", [0.1, -0.3, 0.0])):  # an underscore in the name
        p = tmp_path / f"sub-01_backbone-b_layer-layer3_model-{model}_stat-r_statmap.nii.gz"
        write_nifti(to_volume(r, ijk, (10, 12, 9), aff), p)
        paths.append(p)
    write_nifti(to_volume(np.ones(3), ijk, (10, 12, 9), aff), tmp_path / "ref.nii.gz")
    sec = brain_map_section("01", paths, tmp_path / "ref.nii.gz")
    assert len(sec["figures"]) == 2 and all(f["uri"].startswith("data:image/png;base64,") for f in sec["figures"])
    cap = sec["figures"][0]["caption"]
    assert cap.startswith("routing (layer3): voxelwise Pearson r") and "3 voxels, median 0.200" in cap
    assert "±0.40" in cap and "first bold run" in cap  # the shared scale is the largest |r| of all maps
    assert sec["figures"][1]["caption"].startswith("ridge_grid (layer3)") and "2 voxels" in sec["figures"][1]["caption"]
    fig = brain_map(to_volume([0.4, 0.2, 0.1], ijk, (10, 12, 9), aff), str(tmp_path / "ref.nii.gz"), "t", vmax=0.4)
    assert fig.colorbar_ is not None and fig.colorbar_.get_ylabel() == "Pearson r"
    ticks = [float(t.get_text().replace("\u2212", "-")) for t in fig.colorbar_.get_yticklabels()]
    assert min(ticks) == pytest.approx(-0.4) and max(ticks) == pytest.approx(0.4)


def test_confusion_matrices_name_every_class_in_full_and_carry_a_colour_bar():
    from neuroattn.report.figures import confusion_grid

    classes = ["left_hand", "right_hand", "feet", "tongue"]
    fig = confusion_grid({"basenet": np.eye(4) * 5 + 1, "eegnet": np.ones((4, 4))}, classes, "t")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["basenet (0.67)", "eegnet (0.25)"]  # 24 of 36 on the diagonal
    for ax in panels:
        assert [t.get_text() for t in ax.get_xticklabels()] == classes
        assert [t.get_text() for t in ax.get_yticklabels()] == classes
    assert len(fig.axes) == 2 + 1  # two panels + one shared colour bar
    assert fig.axes[-1].get_ylabel() == "proportion of the true class"


def test_attention_grid_shows_scale_fixation_and_true_outline():
    from matplotlib.collections import LineCollection
    from matplotlib.contour import ContourSet

    from neuroattn.report.figures import image_grid

    att = np.zeros((4, 4))
    att[1, 2] = 0.7
    rf = np.exp(-((np.arange(16)[:, None] - 5) ** 2 + (np.arange(16)[None] - 10) ** 2) / 8.0)
    fig = image_grid([np.zeros((64, 64, 3))] * 2, ["ret_V1.lh", "cat_a.lh"], overlays=[att, att / 2],
                     scale_label="attention weight", fixation=True, outlines=[rf, None])
    assert fig.colorbar_.ax.get_ylabel() == "attention weight"
    assert fig.colorbar_.vmin == 0 and fig.colorbar_.vmax == pytest.approx(0.7)  # one scale for every panel
    a0, a1 = fig.axes[0], fig.axes[1]
    assert any(isinstance(c, (ContourSet, LineCollection)) for c in a0.collections + a0.get_children())
    assert not any(isinstance(c, ContourSet) for c in a1.get_children())  # no truth given, no outline
    cross = [ln for ln in a0.lines if ln.get_marker() == "+"]
    assert cross and tuple(cross[0].get_xydata()[0]) == (32.0, 32.0)  # fixation at the image centre
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["truth (half max)", "fixation (image centre)"]


def test_decoding_titles_mark_correct_and_wrong_and_give_the_true_rank():
    from neuroattn.report.subject import decode_titles

    test = np.array(["a.png", "b.png", "c.png"])
    cands = np.array(["a.png", "b.png", "c.png", "d.png"])
    top5 = np.array([[0, 1, 2, 3], [2, 1, 0, 3], [3, 0, 1, 2]])
    t = decode_titles(test, cands, top5[:, 0], ranks=np.array([1, 2, 4]))
    assert t[0] == ("true a.png\nrank 1 of 4", "CORRECT: a.png", True)
    assert t[1] == ("true b.png\nrank 2 of 4", "WRONG: c.png", False)
    assert t[2][0] == "true c.png\nrank 4 of 4" and not t[2][2]
    old = decode_titles(test, cands, top5[:, 0], ranks=None, top5=top5[:, :2])  # files with the top 5 only
    assert [x[0].split("\n")[1] for x in old] == ["rank 1 of 4", "rank 2 of 4", "rank >5 of 4"]


def test_incontext_retrieval_ranks_agree_with_topk():
    from neuroattn.models.incontext import retrieve

    rng = np.random.default_rng(0)
    cand = rng.normal(size=(6, 5))
    pred = cand[[2, 0, 5]] + 0.01 * rng.normal(size=(3, 5))
    pred[1] = cand[3]  # the second query retrieves d, not a
    out = retrieve(pred, cand, [f"i{j}" for j in range(6)], ["i2", "i0", "i5"], ks=(1,))
    assert out["rank"][0] == 1 and out["rank"][2] == 1 and out["rank"][1] > 1
    assert out["top1"] == pytest.approx(np.mean(out["rank"] == 1))


def test_trials_per_class_counts_kept_epochs(tmp_path):
    mne = pytest.importorskip("mne")
    from neuroattn.report.subject import _eeg_section, kept_per_class

    info = mne.create_info(["C3", "Cz", "C4"], 100.0, "eeg")
    info.set_montage(mne.channels.make_standard_montage("standard_1020"))
    events = np.array([[i * 100, 0, c] for i, c in enumerate([1, 1, 2, 2, 2])])
    ep = mne.EpochsArray(np.zeros((5, 3, 20)), info, events, event_id={"left_hand": 1, "right_hand": 2}, verbose="error")
    ep.drop([0], reason="too noisy", verbose="error")
    assert kept_per_class(ep) == {"left_hand": 1, "right_hand": 3}
    ep.save(tmp_path / "x_epo.fif", verbose="error")
    pd.DataFrame({"label": ["left_hand", "left_hand", "right_hand", "right_hand", "right_hand"],
                  "kept": [False, True, True, True, True],
                  "drop_reason": ["amplitude", "n/a", "n/a", "n/a", "n/a"]}).to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    text = _eeg_section("01", tmp_path / "x_epo.fif", tmp_path / "t.tsv", [])["text"]
    assert "Trials per class (kept epochs): left_hand: 1, right_hand: 3." in text  # the table's 2 left_hand rows: one dropped
    assert "1 epochs dropped (amplitude: 1)" in text


def test_topomaps_name_channels_and_carry_a_colour_bar():
    mne = pytest.importorskip("mne")
    from neuroattn.report import subject

    chs = ["Fz", "C3", "Cz", "C4", "Pz"]
    info = mne.create_info(chs, 250.0, "eeg")
    info.set_montage(mne.channels.make_standard_montage("standard_1020"))
    fig = subject._topomaps(np.arange(10.0).reshape(2, 5), chs, ["left_hand", "right_hand"], info, "t")
    maps, bar = fig.axes[:2], fig.axes[2:]
    assert [ax.get_title() for ax in maps] == ["left_hand", "right_hand"]
    for ax in maps:
        assert {t.get_text() for t in ax.texts} >= set(chs)  # every electrode named
    assert len(bar) == 1 and bar[0].get_ylabel() == "importance"


def test_figures_are_embedded_at_a_readable_resolution():
    import base64
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    from neuroattn.report.html import fig_to_uri

    fig, ax = plt.subplots(figsize=(2, 1))
    uri = fig_to_uri(fig)
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert img.info["dpi"][0] >= 100


def test_true_routing_outlines_come_from_the_simulated_truth(tmp_path):
    """Retinotopic queries: the RF of their voxels (x, y in image coordinates); category queries on an
    example image: that image's object of the category."""
    import h5py

    from neuroattn.stages.report import true_routing

    s = h5py.string_dtype("utf-8")
    with h5py.File(tmp_path / "truth.h5", "w") as f:
        f.create_dataset("voxel_roi", data=np.array(["ret_V1", "ret_V1", "cat_disk"], dtype=object), dtype=s)
        f.create_dataset("voxel_hemi", data=np.array(["lh", "lh", "lh"], dtype=object), dtype=s)
        f.create_dataset("voxel_ijk", data=np.zeros((3, 3), np.int32))
        f.create_dataset("rf_center", data=np.array([[0.25, 0.75], [0.25, 0.75], [np.nan, np.nan]], np.float32))
        f.create_dataset("rf_sigma", data=np.array([0.05, 0.05, np.nan], np.float32))
        f.create_dataset("images", data=np.array(["a.png"], dtype=object), dtype=s)
        f.create_dataset("roi_routing/cat_disk", data=np.full((64, 64), 1 / 64 ** 2, np.float32))
        obj = np.zeros((1, 24, 24), np.float32)
        obj[0, 2:5, 3:7] = 1 / 12
        f.create_dataset("image_routing/cat_disk", data=obj)
    with h5py.File(tmp_path / "pred.h5", "w") as f:
        f.create_dataset("attention/rois", data=np.array(["ret_V1", "cat_disk"], dtype=object), dtype=s)
        f.create_dataset("attention/mean", data=np.full((2, 4, 4), 1 / 16, np.float32))
        f.create_dataset("attention/example_images", data=np.array(["a.png"], dtype=object), dtype=s)
    t = true_routing(str(tmp_path / "truth.h5"), [str(tmp_path / "pred.h5")])[str(tmp_path / "pred.h5")]
    assert t["mean"].shape == (2, 24, 24) and t["examples"].shape == (1, 2, 24, 24)
    row, col = np.unravel_index(np.argmax(t["mean"][0]), (24, 24))
    assert abs(row - 0.75 * 24) <= 1 and abs(col - 0.25 * 24) <= 1  # y = 0.75 down, x = 0.25 across
    np.testing.assert_allclose(t["examples"][0, 1], obj[0])  # the example's own object
    np.testing.assert_allclose(t["examples"][0, 0], t["mean"][0])  # RFs do not depend on the image


def test_roi_map_names_every_roi_in_its_colour(tmp_path):
    from neuroattn.data.volumes import to_volume, write_nifti
    from neuroattn.report.subject import _roi_names
    from neuroattn.report.figures import roi_map

    aff = np.diag([8.0, 8.0, 8.0, 1.0])
    aff[:3, 3] = [-40, -80, -30]
    write_nifti(to_volume([1, 2, 2], [[2, 3, 4], [5, 5, 5], [6, 5, 5]], (10, 12, 9), aff),
                tmp_path / "sub-01_desc-rois_dseg.nii.gz")
    pd.DataFrame({"index": [1, 2], "name": ["ret_V1", "cat_face"]}).to_csv(tmp_path / "sub-01_desc-rois_dseg.tsv",
                                                                           sep="\t", index=False)
    names = _roi_names(tmp_path / "sub-01_desc-rois_dseg.nii.gz")
    assert names == {1: "ret_V1", 2: "cat_face"}
    assert roi_map(tmp_path / "sub-01_desc-rois_dseg.nii.gz", "t", names).roi_legend_ == ["ret_V1", "cat_face"]
