# Network features: train the default backbone on the stimuli, then extract and cache layers.
# A trained backbone listed in scoring.backbones also puts its held-out clean / rotated / PGD
# accuracy on the leaderboard (config/crossvit.yaml: the four CrossViT training regimes).

# (backbone_comparison also reads encode.backbone's, first)
COMPARISON_BACKBONES = list(dict.fromkeys([config["encode"]["backbone"], *config["scoring"].get("backbones", [])]))
SCORE_FILES += [f"{R}/features/{b}/robustness_scores.tsv" for b in config["scoring"].get("backbones", [])
                if backbone_cfg(b).get("weights") == "train" and FMRI_SUBJECTS]  # none without fMRI (modalities)


rule train_backbone:
    input:
        dataset=fmri_dataset,
        stimuli=stimuli_input,
    output:
        weights=f"{R}/features/{{backbone}}/weights.pt",
        history=f"{R}/features/{{backbone}}/training.tsv",
        scores=f"{R}/features/{{backbone}}/robustness_scores.tsv",
    params:
        stimuli_dir=stimuli_dir(),
        backbone_config=lambda w: backbone_cfg(w.backbone),
        training=config["backbone_training"],
        seed=config["seed"],
        device=config["device"],
    priority: 10  # the fMRI chain to the backbone is the run's critical path: EEG jobs fill in beside it
    log:
        f"{R}/logs/train_backbone/{{backbone}}.log",
    benchmark:
        f"{R}/benchmarks/train_backbone/{{backbone}}.tsv"
    threads: 1  # with 2 it waits for both cores (the EEG jobs hold one) and then blocks them; 1 runs beside them
    resources:
        mem_mb=mem_mb(4000),
        runtime=60,
        gpu=GPU,
    conda:
        "../environment.yml"
    script:
        "scripts/train_backbone.py"


rule extract_features:
    input:
        dataset=fmri_dataset,
        stimuli=stimuli_input,
        split=f"{R}/splits/images.tsv",
        weights=backbone_weights,
    output:
        features_h5=f"{R}/features/{{backbone}}/features.h5",
    params:
        stimuli_dir=stimuli_dir(),
        backbone_config=lambda w: backbone_cfg(w.backbone),
        features=lambda w: {k: v for k, v in config["features"].items() if k != "backbones"},
        seed=config["seed"],
        device=config["device"],
    priority: 10  # the fMRI chain to the backbone is the run's critical path: EEG jobs fill in beside it
    log:
        f"{R}/logs/extract_features/{{backbone}}.log",
    benchmark:
        f"{R}/benchmarks/extract_features/{{backbone}}.tsv"
    threads: 2
    resources:
        mem_mb=mem_mb(4000),
        runtime=60,
        gpu=GPU,
    conda:
        "../environment.yml"
    script:
        "scripts/extract_features.py"


# Not part of `all`: config/crossvit.yaml's regime comparison (snakemake ... backbone_comparison).
rule backbone_comparison:
    input:
        scores=lambda w: [f"{R}/sub-{s}/scores/sub-{s}_backbone-{b}_desc-commitment_scores.tsv"
                          for b in COMPARISON_BACKBONES for s in FMRI_SUBJECTS],
        layers=lambda w: [f"{R}/sub-{s}/scores/sub-{s}_backbone-{b}_desc-commitment_layers.tsv"
                          for b in COMPARISON_BACKBONES for s in FMRI_SUBJECTS],
        robustness=lambda w: [f"{R}/features/{b}/robustness_scores.tsv" for b in COMPARISON_BACKBONES
                              if backbone_cfg(b).get("weights") == "train"],
    output:
        table=f"{R}/scores/backbone_comparison.tsv",
    params:
        backbones=COMPARISON_BACKBONES,
    log:
        f"{R}/logs/backbone_comparison.log",
    conda:
        "../environment.yml"
    script:
        "scripts/backbone_comparison.py"


# the group page shows the comparison whenever scoring.backbones names backbones to compare
COMPARISON_TABLES = ([rules.backbone_comparison.output.table]
                     if config["scoring"].get("backbones") and FMRI_SUBJECTS and config["scoring"]["commit_layers"] else [])
