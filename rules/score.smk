# Brain-Score-style scoring: layer commitment per subject, and the one leaderboard.


rule layer_commitment:
    input:
        betas=lambda w: betas_path(w.subject),
        features=f"{R}/features/{{backbone}}/features.h5",
        split=f"{R}/splits/images.tsv",
    output:
        scores=f"{R}/sub-{{subject}}/scores/sub-{{subject}}_backbone-{{backbone}}_desc-commitment_scores.tsv",
        layers=f"{R}/sub-{{subject}}/scores/sub-{{subject}}_backbone-{{backbone}}_desc-commitment_layers.tsv",
    params:
        scoring=config["scoring"],
        seed=config["seed"],
        backbone_layers=lambda w: config["features"]["backbones"].get(w.backbone, {}).get("layers", []),
    log:
        f"{R}/logs/layer_commitment/sub-{{subject}}_backbone-{{backbone}}.log",
    benchmark:
        f"{R}/benchmarks/layer_commitment/sub-{{subject}}_backbone-{{backbone}}.tsv"
    resources:
        mem_mb=mem_mb(4000),
        runtime=60,
    conda:
        "../environment.yml"
    script:
        "scripts/layer_commitment.py"


rule subsampling:
    input:
        betas=lambda w: betas_path(w.subject),
        features=f"{R}/features/{{backbone}}/features.h5",
        split=f"{R}/splits/images.tsv",
    output:
        curves=f"{R}/sub-{{subject}}/scores/sub-{{subject}}_backbone-{{backbone}}_layer-{{layer}}_desc-subsampling_curves.tsv",
    params:
        scoring=config["scoring"],
        seed=config["seed"],
    log:
        f"{R}/logs/subsampling/sub-{{subject}}_backbone-{{backbone}}_layer-{{layer}}.log",
    resources:
        mem_mb=mem_mb(3000),
        runtime=30,
    conda:
        "../environment.yml"
    script:
        "scripts/subsampling.py"


rule similarity:
    input:
        betas=lambda w: betas_path(w.subject),
        features=f"{R}/features/{{backbone}}/features.h5",
        split=f"{R}/splits/images.tsv",
    output:
        scores=f"{R}/sub-{{subject}}/scores/sub-{{subject}}_backbone-{{backbone}}_desc-similarity_scores.tsv",
        layers=f"{R}/sub-{{subject}}/scores/sub-{{subject}}_backbone-{{backbone}}_desc-similarity_layers.tsv",
        curves=f"{R}/sub-{{subject}}/scores/sub-{{subject}}_backbone-{{backbone}}_desc-ssmsubsampling_curves.tsv",
    params:
        scoring=config["scoring"],
        seed=config["seed"],
        backbone_layers=lambda w: config["features"]["backbones"].get(w.backbone, {}).get("layers", []),
    log:
        f"{R}/logs/similarity/sub-{{subject}}_backbone-{{backbone}}.log",
    benchmark:
        f"{R}/benchmarks/similarity/sub-{{subject}}_backbone-{{backbone}}.tsv"
    resources:
        mem_mb=mem_mb(3000),
        runtime=20,
    conda:
        "../environment.yml"
    script:
        "scripts/similarity.py"


SUBSAMPLING_FILES = expand(
    rules.subsampling.output.curves, subject=FMRI_SUBJECTS, backbone=[ENCODE["backbone"]], layer=ENCODE["layers"][:1]
)
ENCODED_BACKBONES = {ENCODE["backbone"], IC["backbone"]}
COMMITMENT_LAYER_FILES = []
COMMIT_BACKBONES = list(dict.fromkeys([ENCODE["backbone"], *config["scoring"].get("backbones", [])]))
if config["scoring"]["commit_layers"]:
    SCORE_FILES += expand(rules.layer_commitment.output.scores, subject=FMRI_SUBJECTS, backbone=COMMIT_BACKBONES)
    # the group report's commitment section reads encode.backbone's tables only (depths of one network)
    COMMITMENT_LAYER_FILES = expand(rules.layer_commitment.output.layers, subject=FMRI_SUBJECTS, backbone=[ENCODE["backbone"]])
# similarity rows on the leaderboard (encode.backbone); the group page tells the tables apart by
# their desc- (SSM commitment beside PLS, SSM subsampling beside Pearson r).
if config["scoring"].get("similarity", {}).get("enabled", True):
    SCORE_FILES += expand(rules.similarity.output.scores, subject=FMRI_SUBJECTS, backbone=[ENCODE["backbone"]])
    COMMITMENT_LAYER_FILES = COMMITMENT_LAYER_FILES + expand(
        rules.similarity.output.layers, subject=FMRI_SUBJECTS, backbone=[ENCODE["backbone"]])
    SUBSAMPLING_FILES = SUBSAMPLING_FILES + expand(
        rules.similarity.output.curves, subject=FMRI_SUBJECTS, backbone=[ENCODE["backbone"]])


localrules:
    leaderboard,


rule leaderboard:
    input:
        scores=SCORE_FILES,
    output:
        table=f"{R}/scores/leaderboard.tsv",
    params:
        backbones=list(config["features"]["backbones"]),
        incontext=config["incontext"],
    log:
        f"{R}/logs/leaderboard.log",
    conda:
        "../environment.yml"
    script:
        "scripts/leaderboard.py"


# Voxelwise maps (the subject page draws them with nilearn): volumetric formats only (VOXEL_MAP_FORMATS).
localrules:
    voxel_maps,


rule voxel_maps:
    input:
        betas=lambda w: betas_path(w.subject),
        preds=lambda w: [rules.encode.output.pred.format(subject=w.subject, backbone=config["encode"]["backbone"],
                                                         layer=layer, model=model)
                         for layer in config["encode"]["layers"] for model in config["encode"]["models"]],
        dataset=fmri_dataset,
    output:
        maps=voxel_map_files("{subject}"),
        boldref=f"{R}/sub-{{subject}}/scores/sub-{{subject}}_desc-boldref.nii.gz",
    params:
        bids_root=fmri_root(),
        format=FMRI_FORMAT,
        adapter=config["fmri"].get("adapter") or {},
        task=FMRI_TASK,
    log:
        f"{R}/logs/voxel_maps/sub-{{subject}}.log",
    conda:
        "../environment.yml"
    script:
        "scripts/voxel_maps.py"
