# fMRI: single-trial GLM betas, ROIs, noise ceilings; the train/test image split.


rule fmri_betas:
    input:
        dataset=fmri_dataset,
    output:
        betas=f"{R}/sub-{{subject}}/func/sub-{{subject}}_task-{FMRI_TASK}_desc-betas.h5",
        trials=f"{R}/sub-{{subject}}/func/sub-{{subject}}_task-{FMRI_TASK}_desc-trials.tsv",
        voxels=f"{R}/sub-{{subject}}/func/sub-{{subject}}_task-{FMRI_TASK}_desc-voxels.tsv",
        provenance=f"{R}/sub-{{subject}}/func/sub-{{subject}}_task-{FMRI_TASK}_desc-provenance.json",
    params:
        bids_root=fmri_root(),
        format=FMRI_FORMAT,
        adapter=config["fmri"].get("adapter") or {},
        task=FMRI_TASK,
        glm=config["fmri"]["glm"],
        keep_other=config["fmri"]["keep_other"],
        seed=config["seed"],
    priority: 10  # the fMRI chain to the backbone is the run's critical path: EEG jobs fill in beside it
    log:
        f"{R}/logs/fmri_betas/sub-{{subject}}.log",
    benchmark:
        f"{R}/benchmarks/fmri_betas/sub-{{subject}}.tsv"
    resources:
        mem_mb=mem_mb(4000),
        runtime=60,
    conda:
        "../environment.yml"
    script:
        "scripts/fmri_betas.py"


localrules:
    image_split,


rule image_split:
    input:
        betas=[betas_path(s) for s in FMRI_SUBJECTS],
    output:
        split=f"{R}/splits/images.tsv",
    params:
        mode=config["fmri"]["test_images"],
    priority: 10  # the fMRI chain to the backbone is the run's critical path: EEG jobs fill in beside it
    log:
        f"{R}/logs/image_split.log",
    conda:
        "../environment.yml"
    script:
        "scripts/image_split.py"
