# Brain encoders per subject x backbone x layer x model: routing (attention), ridge and
# spatial-feature baselines. Each job writes held-out predictions and leaderboard rows.
ENCODE = config["encode"]
from neuroattn.models.encoders import ENCODERS, config_key  # noqa: E402  (the one list of encoders)


rule encode:
    input:
        betas=lambda w: betas_path(w.subject),
        features=f"{R}/features/{{backbone}}/features.h5",
        split=f"{R}/splits/images.tsv",
    output:
        pred=f"{R}/sub-{{subject}}/encode/sub-{{subject}}_backbone-{{backbone}}_layer-{{layer}}_model-{{model}}_pred.h5",
        scores=f"{R}/sub-{{subject}}/encode/sub-{{subject}}_backbone-{{backbone}}_layer-{{layer}}_model-{{model}}_scores.tsv",
    params:
        model_cfg=lambda w: ENCODE.get(config_key(w.model), {}),
        hemispheres=ENCODE.get("hemispheres", "auto"),
        voxel_maps=lambda w: ENCODE.get("voxel_maps", 0) if "voxel_maps" in ENCODERS[w.model].produces else 0,
        seed=config["seed"],
        device=config["device"],
        checkpoint_dir=lambda w: f"{R}/checkpoints/encode/sub-{w.subject}_backbone-{w.backbone}_layer-{w.layer}_model-{w.model}",
    log:
        f"{R}/logs/encode/sub-{{subject}}_backbone-{{backbone}}_layer-{{layer}}_model-{{model}}.log",
    benchmark:
        f"{R}/benchmarks/encode/sub-{{subject}}_backbone-{{backbone}}_layer-{{layer}}_model-{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=60,
        gpu=GPU,
    conda:
        "../environment.yml"
    script:
        "scripts/encode.py"


SCORE_FILES += expand(
    rules.encode.output.scores,
    subject=FMRI_SUBJECTS,
    backbone=[ENCODE["backbone"]],
    layer=ENCODE["layers"],
    model=ENCODE["models"],
)


if FMRI_ROOT is None and "routing" in ENCODE["models"]:

    rule routing_truth:
        """Simulated data only: the routing encoder's attention and per-voxel maps against the
        simulation's true routing (receptive fields, category routing)."""
        input:
            pred=f"{R}/sub-{{subject}}/encode/sub-{{subject}}_backbone-{{backbone}}_layer-{{layer}}_model-routing_pred.h5",
            betas=lambda w: betas_path(w.subject),
            dataset=fmri_dataset,
        output:
            table=f"{R}/sub-{{subject}}/encode/sub-{{subject}}_backbone-{{backbone}}_layer-{{layer}}_model-routing_desc-truthcheck.tsv",
        params:
            truth=lambda w: f"{fmri_root()}/derivatives/truth/sub-{w.subject}/sub-{w.subject}_desc-truth.h5",
        log:
            f"{R}/logs/routing_truth/sub-{{subject}}_backbone-{{backbone}}_layer-{{layer}}.log",
        conda:
            "../environment.yml"
        script:
            "scripts/routing_truth.py"
