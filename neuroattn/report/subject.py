"""The per-subject page: data summary, scores against ceilings, attention maps, decoded images,
EEG channel quality, topomaps and confusion matrices, provenance."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..leaderboard import NORMALISED, read_scores
from . import figures
from .html import fig_to_uri, render_page, table
from .provenance import provenance
from .summary import page_header
from .eeg_maps import PATTERN_CAPTION, channel_picks, pattern_grid, truth_section
from .brain_maps import brain_map_section


MAIN_METRIC = {"fmri": "noise_normalized_r2", "eeg": "accuracy"}


def _scores_section(lb, subject):
    """Figures and a compact model x target table of each modality's main metric."""
    d = lb[lb.subject.astype(str) == subject]
    if not len(d):
        return [{"title": "Scores", "note": f"No scores for sub-{subject} in the leaderboard."}]
    sections = []
    for modality, metric in MAIN_METRIC.items():
        g = d[(d.modality == modality) & (d.metric == metric) & ~d.model.str.match(r".+_k\d+$")]
        if not len(g):
            continue
        pivot = g.pivot_table(index="model", columns="target", values="value", aggfunc="mean").reset_index()
        text = f"{metric} of every {modality} model (rows) per target (columns)."
        if metric == "noise_normalized_r2":
            text += " Already divided by each voxel's noise ceiling: 1 is the ceiling."
        fig = figures.metric_bars(g, metric, f"sub-{subject} {modality}: {metric}")
        cap = metric + ("; normalised: 1 = noise ceiling" if metric in NORMALISED else "; black ticks: ceiling" if g.ceiling.notna().any() else "") + \
            ("; red ticks: chance" if g.chance.notna().any() else "")
        sections.append({"title": f"{modality.upper()} scores", "text": text, "table": table(pivot),
                         "figures": [{"uri": fig_to_uri(fig), "caption": cap}]})
    ic = d[d.model.str.match(r".+_k\d+$")]
    if len(ic):
        pivot = ic.pivot_table(index="model", columns="metric", values="value", aggfunc="mean").reset_index()
        sections.append({"title": "Cross-subject decoding scores", "table": table(pivot),
                         "text": "This subject held out: encoders inferred from k context images, test images decoded and "
                                 "retrieved among all test images."})
    return sections


def _fmri_section(subject, betas_path, dseg_path, test_images):
    from ..data.betas import Betas
    from ..metrics.ceiling import images_noise_ceiling

    b = Betas.read(betas_path)
    rows = []
    nc_by_roi = {}
    test = np.isin(b.images, test_images) if test_images is not None else np.ones(len(b.images), bool)
    nc = images_noise_ceiling(b.ncsnr, b.images, b.n_repeats, b.images[test])  # none in test: all images
    for roi in b.rois:
        m = b.voxel_roi == roi
        nc_by_roi[roi] = nc[m]
        rows.append({"roi": roi, "voxels": int(m.sum()), "median ncsnr": float(np.nanmedian(b.ncsnr[m])),
                     "median noise ceiling": float(np.nanmedian(nc[m]))})
    text = (f"{len(b.trial_image)} trials, {len(b.images)} images ({int((b.n_repeats > 1).sum())} repeated), "
            f"{b.trial_betas.shape[1]} voxels in {len(b.rois)} ROIs. Noise ceilings use the NSD/Algonauts formula "
            "with the test images' repeat counts.")
    figs = [{"uri": fig_to_uri(figures.ceiling_hist(nc_by_roi)), "caption": "voxel noise ceilings per ROI"}]
    if dseg_path and Path(dseg_path).is_file():
        figs.insert(0, {"uri": fig_to_uri(figures.roi_map(dseg_path, f"sub-{subject} ROIs", _roi_names(dseg_path))),
                        "caption": "ROIs on the MNI152 template, each named in its colour"})
    return {"title": "fMRI data", "text": text, "table": table(pd.DataFrame(rows)), "figures": figs}


def _roi_names(dseg_path) -> dict | None:
    """Label value -> ROI name from the dseg's TSV (``index``, ``name``) beside it; None without one."""
    tsv = Path(str(dseg_path).replace(".nii.gz", ".tsv").replace(".nii", ".tsv"))
    if not tsv.is_file():
        return None
    t = pd.read_csv(tsv, sep="\t")
    if not {"index", "name"} <= set(t.columns):
        return None
    return {int(i): str(n) for i, n in zip(t["index"], t["name"]) if int(i) > 0}


def _load_stimulus(stim_dir, name):
    from PIL import Image

    with Image.open(Path(stim_dir) / name) as im:
        return np.asarray(im.convert("RGB"))


ATTENTION_SCALE = "attention weight (map sums to 1)"


def _attention_section(pred_paths, stim_dir, n_examples, true_routing=None):
    """Routing attention maps (head-averaged, per ROI) over example stimuli.

    ``true_routing``: simulated data only, ``{pred path: {"mean": (n_q, h, w), "examples":
    (n_ex, n_q, h, w) or None}}`` true routing maps, drawn as half-maximum outlines.
    """
    figs = []
    true_routing = true_routing or {}
    for p in pred_paths:
        with h5py.File(p, "r") as f:
            if "attention" not in f:
                continue
            g = f["attention"]
            rois = g["rois"].asstr()[()]
            mean_maps = g["mean"][()]  # (n_rois, h, w)
            ex_imgs = g["example_images"].asstr()[()][:n_examples] if "example_images" in g else []
            ex_maps = g["examples"][()][:n_examples] if "examples" in g else None  # (n_ex, n_rois, h, w)
        truth = true_routing.get(str(p)) or {}
        t_mean = truth.get("mean")
        t_ex = truth.get("examples")
        n_tok = int(np.prod(mean_maps.shape[1:]))
        blank = np.full((64, 64, 3), 0.5)
        truth_txt = ("; cyan: the true routing (half maximum): the mean receptive field of the query's voxels "
                     "(ret_*) or where its category's objects lie (cat_*)") if t_mean is not None else ""
        figs.append({"uri": fig_to_uri(figures.image_grid(
            [blank] * len(rois), list(rois), overlays=list(mean_maps), scale_label=ATTENTION_SCALE, fixation=True,
            outlines=list(t_mean) if t_mean is not None else None, outline_label="true routing")),
            "caption": f"{Path(p).name}: attention per ROI query, head-averaged, mean over test images, on the "
                       f"visual field (grey square = the image; + = fixation at its centre; {n_tok} tokens, "
                       f"uniform {1 / n_tok:.3f}){truth_txt}"})
        if ex_maps is not None and len(ex_imgs):
            for r, roi in enumerate(rois[: min(4, len(rois))]):
                imgs = [_load_stimulus(stim_dir, im) for im in ex_imgs]
                outl = [t_ex[i][r] for i in range(len(ex_imgs))] if t_ex is not None else None
                if outl is not None and not any(np.isfinite(o).any() for o in outl):
                    outl = None  # the category is in none of the examples: nothing to outline (nor to say)
                figs.append({"uri": fig_to_uri(figures.image_grid(
                    imgs, list(ex_imgs), overlays=[m[r] for m in ex_maps], scale_label=ATTENTION_SCALE,
                    fixation=True, outlines=outl, outline_label="true RF" if roi.startswith("ret_") else "object")),
                    "caption": f"{roi}: attention over example test stimuli (+ = fixation; weights per token, each map "
                               f"sums to 1, uniform {1 / n_tok:.3f})" +
                               ("; cyan: the true " + ("receptive field" if roi.startswith("ret_") else
                                                       "object outline of the ROI's category") if outl else "")})
    if not figs:
        return None
    return {"title": "Attention routing maps", "figures": figs}


def _routing_truth_section(paths):
    """Simulated data: the routing maps against the true routing (neuroattn.models.encoding)."""
    frames = []
    for p in paths:
        t = pd.read_csv(p, sep="\t")
        t["cell"] = [f"{v:.2f} ({r:.2f})" for v, r in zip(t.value, t.reference)]
        layer = Path(p).name.split("_layer-")[-1].split("_")[0] if "_layer-" in Path(p).name else Path(p).stem
        frames.append(t.assign(layer=layer))
    if not frames:
        return None
    d = pd.concat(frames).pivot_table(index=["layer", "query"], columns="measure", values="cell", aggfunc="first")
    return {"title": "Routing maps against the simulation's truth",
            "text": ("Each cell: value (reference). attention_*: the query's head-averaged attention (mean over "
                     "test images) against its true routing map; references: a random grid cell (peak) and a "
                     "uniform map (centroid); attention_peak_to_rf_centre: tokens from the attention peak to the mean receptive-field "
                     "centre of the query's voxels. voxel_*: each retinotopic voxel's routing map (gradient x input "
                     "per token) against its own receptive-field centre, medians over voxels, in tokens; "
                     "reference: predicting every voxel's centre by its ROI's mean centre."),
            "table": table(d.reset_index())}


def decode_titles(test, candidates, top1, ranks=None, top5=None) -> list[tuple[str, str, bool]]:
    """Panel titles of the decoding examples: ``(true title, decoded title, correct)`` per test image.

    The true image's rank among the candidates comes from ``ranks`` (1-based) or, for files
    without it, from ``top5`` (a rank above 5 is shown as ">5").
    """
    n_cand = len(candidates)
    out = []
    for i, (t, r) in enumerate(zip(test, np.asarray(candidates)[top1])):
        if ranks is not None:
            rank = str(int(ranks[i]))
        else:
            hit = np.flatnonzero(np.asarray(candidates)[np.asarray(top5[i])] == t) if top5 is not None else []
            rank = str(int(hit[0]) + 1) if len(hit) else ">5"
        ok = t == r
        out.append((f"true {t}\nrank {rank} of {n_cand}", f"{'CORRECT' if ok else 'WRONG'}: {r}", ok))
    return out


def _decode_section(pred_path, stim_dir, n_examples):
    """Decoded (top-1 retrieved) vs true test images for the held-out subject, and accuracy vs k."""
    with h5py.File(pred_path, "r") as f:
        k = int(f.attrs["default_k"])
        test = f["test_images"].asstr()[()]
        cands = f["candidate_images"].asstr()[()]
        key = f"incontext_k{k}"
        if f"top5/{key}" not in f:
            return None
        top5 = f[f"top5/{key}"][()]
        ranks = f[f"rank/{key}"][()] if f"rank/{key}" in f else None
        ks = f["k"][()]
        curves = {m: (f[f"curves/{m}/top1"][()], None) for m in f["curves"].keys()}
        n_cand = int(f.attrs["n_candidates"])
    titles_all = decode_titles(test, cands, top5[:, 0], ranks, top5)
    imgs, titles, frames = [], [], []
    for t, r, (tt, dt, ok) in list(zip(test, cands[top5[:, 0]], titles_all))[:n_examples]:
        imgs += [_load_stimulus(stim_dir, t), _load_stimulus(stim_dir, r)]
        titles += [tt, dt]
        frames += [None, "tab:green" if ok else "tab:red"]
    n_ok = sum(ok for _, _, ok in titles_all)
    rank_note = "" if ranks is not None else " (this file stores the top 5 only: ranks above 5 read '>5')"
    med = f"; median rank of the true image {float(np.median(ranks)):g} of {n_cand}" if ranks is not None else ""
    figs = [{"uri": fig_to_uri(figures.image_grid(imgs, titles, ncols=6, frames=frames)),
             "caption": f"pairs of true and top-1 retrieved test images (in-context, k={k}, {n_cand} candidates): "
                        f"green frame CORRECT, red WRONG; 'rank' is the true image's rank among the candidates "
                        f"(1 = retrieved){rank_note}. {n_ok} of {len(test)} test images correct{med}."},
            {"uri": fig_to_uri(figures.curve(list(ks), curves, "context images k", "top-1", "held-out decoding",
                                             chance=1.0 / n_cand)),
             "caption": "top-1 retrieval against the number of context images, in-context vs ridge on the same images"}]
    return {"title": "Decoded vs true images (in-context, no fine-tuning)", "figures": figs}


def kept_per_class(epochs) -> dict:
    """Epochs per class among the kept epochs (the epochs file holds only those), in event-id order."""
    codes = np.asarray(epochs.events[:, 2])
    return {name: int((codes == code).sum()) for name, code in epochs.event_id.items()}


def _eeg_section(subject, epochs_path, table_path, model_preds):
    import mne

    epochs = mne.read_epochs(epochs_path, preload=True, verbose="error")
    x = epochs.get_data(picks="eeg")
    std_uv = x.std(axis=(0, 2)) * 1e6
    text = f"{len(epochs)} epochs kept, {len(epochs.ch_names)} channels, {epochs.info['sfreq']:g} Hz. "
    text += "Trials per class (kept epochs): " + ", ".join(f"{k}: {v}" for k, v in kept_per_class(epochs).items()) + "."
    if table_path and Path(table_path).is_file():
        t = pd.read_csv(table_path, sep="\t", dtype=str)
        if "kept" in t:
            dropped = t[t["kept"].str.lower() != "true"]
            if len(dropped):
                reasons = dropped.get("drop_reason", pd.Series(["?"] * len(dropped))).fillna("?").value_counts()
                text += f" {len(dropped)} epochs dropped (" + ", ".join(f"{k}: {v}" for k, v in reasons.items()) + ")."
    figs = [{"uri": fig_to_uri(figures.channel_quality(epochs.ch_names, std_uv)), "caption": "channel quality: SD across epochs"}]
    for p in model_preds:
        with h5py.File(p, "r") as f:
            protocol = f.attrs.get("protocol", Path(p).name)
            classes = list(f["classes"].asstr()[()])
            ch = list(f["ch_names"].asstr()[()])
            models = [k for k in f.keys() if isinstance(f[k], h5py.Group) and "confusion" in f[k]]
            cms = {m: f[m]["confusion"][()] for m in models}
            imps = {m: (f[m]["importance"][()], f[m]["importance"].attrs.get("method", ""))
                    for m in models if "importance" in f[m]}
            patterns = {m: f[m]["pattern"][()] for m in models if "pattern" in f[m]}
        if cms:
            figs.append({"uri": fig_to_uri(figures.confusion_grid(cms, classes, f"protocol {protocol}")),
                         "caption": f"confusion matrices, protocol {protocol} (rows true, columns predicted; numbers: trials summed over seeds; colour: proportion of the true class, colour bar)"})
        for m in [m for m in imps if m == "basenet" or m.startswith("basenet_")][:3]:
            imp, method = imps[m]
            figs.append({"uri": fig_to_uri(_topomaps(imp, ch, classes, epochs.info, f"{m} ({protocol})")),
                         "caption": f"channel importance per class of {m}, protocol {protocol} ({method})"})
        if patterns:
            figs.append({"uri": fig_to_uri(pattern_grid(patterns, ch, classes, epochs.info, f"activation patterns ({protocol})")),
                         "caption": PATTERN_CAPTION.format(protocol=protocol)})
    return {"title": "EEG", "text": text, "figures": figs}


def _topomaps(imp, ch_names, classes, info, title):
    """Channel importance per class on one colour scale, electrodes named, with a colour bar."""
    import matplotlib.pyplot as plt
    import mne

    sub_info, keep = channel_picks(info, ch_names)  # values[keep]: right electrodes when any channel is missing
    vals = [np.asarray(v, dtype=float)[keep] for v in imp]
    lo = min(float(np.nanmin(v)) for v in vals) if vals else 0.0
    hi = max(float(np.nanmax(v)) for v in vals) if vals else 1.0
    if lo < 0 < hi:  # signed maps: a symmetric scale centred on 0
        hi = max(hi, -lo)
        lo, cmap = -hi, "RdBu_r"
    else:
        cmap = "Reds"
    fig, axes = plt.subplots(1, len(classes), figsize=(2.6 * len(classes) + 0.8, 2.8))
    im = None
    for ax, cls, values in zip(np.atleast_1d(axes), classes, vals):
        out = mne.viz.plot_topomap(np.nan_to_num(values), sub_info, axes=ax, show=False, contours=0,
                                   names=sub_info.ch_names, vlim=(lo, hi), cmap=cmap, sensors=True)
        im = out[0] if out else im
        for t in ax.texts:  # channel names: small, over the map
            t.set_fontsize(5)
        ax.set_title(cls, fontsize=8)
    if im is not None:
        cb = fig.colorbar(im, ax=list(np.atleast_1d(axes)), fraction=0.025, pad=0.02)
        cb.set_label("importance", fontsize=7)
        cb.ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=8)
    return fig


def build_subject_report(out, subject, leaderboard, config, *, betas=None, dseg=None, split=None,
                         stimuli_dir=None, routing_preds=(), decode_pred=None, epochs=None,
                         epochs_table=None, eeg_preds=(), eeg_truth=None, feature_paths=(), routing_truth=(),
                         configfiles=(), voxel_maps=(), boldref=None, true_routing=None, fmri_truth=None):
    """Write ``results/sub-<subject>/report.html`` from whatever inputs this subject has.

    Parameters are paths; absent modalities are simply left out of the page. ``eeg_truth``: the
    simulated-EEG truth-check table (rule ``eeg_truth``); ``configfiles``: the run's config files
    (shown at the top); ``voxel_maps``/``boldref``: per-encoder voxelwise r maps and the bold
    reference they are drawn on; ``true_routing``: simulated data, the true routing maps of the
    routing queries (:func:`neuroattn.stages.report.true_routing`).
    ``fmri_truth``: the simulated fMRI truth file (content-routing section).
    """
    lb = read_scores(leaderboard)
    n_examples = config.get("report", {}).get("n_examples", 6)
    sections = [{"title": "Group page", "links": [{"href": "../report.html", "text": "all subjects (../report.html)"}]}]
    sections += _scores_section(lb, subject)
    test_images = None
    if split:
        from ..data.splits import read_split

        test_images = read_split(split)[1]
    if betas:
        sections.append(_fmri_section(subject, betas, dseg, test_images))
    if voxel_maps:
        sections.append(brain_map_section(subject, voxel_maps, boldref))
    if routing_preds and stimuli_dir:
        sec = _attention_section(routing_preds, stimuli_dir, n_examples, true_routing)
        if sec:
            sections.append(sec)
    if routing_truth:
        sec = _routing_truth_section(routing_truth)
        if sec:
            sections.append(sec)
    if fmri_truth and routing_preds and stimuli_dir:  # per-image content routing (neuroattn.report.content_routing)
        from .content_routing import content_routing_section

        sec = content_routing_section(routing_preds, fmri_truth, routing_truth, stimuli_dir)
        if sec:
            sections.append(sec)
    if decode_pred and stimuli_dir:
        sec = _decode_section(decode_pred, stimuli_dir, n_examples)
        if sec:
            sections.append(sec)
    if epochs:
        sections.append(_eeg_section(subject, epochs, epochs_table, eeg_preds))
    if eeg_truth:
        sec = truth_section(eeg_truth)
        if sec:
            sections.append(sec)
    d = lb[lb.subject.astype(str) == subject].drop(columns=["subject"])
    sections.append({"title": "All scores", "text": "This subject's rows of results/scores/leaderboard.tsv.",
                     "table": table(d)})
    return render_page(out, title=f"neuroattn: sub-{subject}", sections=sections,
                       provenance=provenance(config, feature_paths), header=page_header(config, configfiles))
