# In-context cross-subject encoder (stage 1) and decoder (stage 2), leave-one-subject-out,
# with the ridge_context baseline on the same context images.
IC = config["incontext"]


rule incontext_prior:
    input:
        features=f"{R}/features/{IC['backbone']}/features.h5",
        split=f"{R}/splits/images.tsv",
    output:
        prior=f"{R}/group/incontext/backbone-{IC['backbone']}_layer-{IC['layer']}_prior.pt",
    params:
        cfg=IC,
        seed=config["seed"],
        device=config["device"],
    log:
        f"{R}/logs/incontext_prior.log",
    benchmark:
        f"{R}/benchmarks/incontext_prior.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=120,
    conda:
        "../environment.yml"
    script:
        "scripts/incontext_prior.py"


rule incontext_loso:
    input:
        prior=rules.incontext_prior.output.prior,
        features=f"{R}/features/{IC['backbone']}/features.h5",
        split=f"{R}/splits/images.tsv",
        betas=[betas_path(s) for s in FMRI_SUBJECTS],
    output:
        pred=f"{R}/sub-{{subject}}/decode/sub-{{subject}}_model-incontext_pred.h5",
        scores=f"{R}/sub-{{subject}}/decode/sub-{{subject}}_model-incontext_scores.tsv",
    params:
        cfg=IC,
        seed=config["seed"],
        device=config["device"],
    log:
        f"{R}/logs/incontext_loso/sub-{{subject}}.log",
    benchmark:
        f"{R}/benchmarks/incontext_loso/sub-{{subject}}.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=120,
    conda:
        "../environment.yml"
    script:
        "scripts/incontext_loso.py"


SCORE_FILES += expand(rules.incontext_loso.output.scores, subject=FMRI_SUBJECTS if len(FMRI_SUBJECTS) > 1 else [])
