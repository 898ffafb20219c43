# Stimuli of released fMRI layouts (fmri.format nsd / algonauts) as PNGs + stimuli.tsv under R/stimuli
# (BIDS and fMRIPrep datasets hold their own <root>/stimuli; see stimuli_dir() in common.smk).


rule stimuli:
    input:
        dataset=fmri_dataset,
    output:
        stimuli_tsv=f"{R}/stimuli/stimuli.tsv",
    params:
        format=FMRI_FORMAT,
        root=fmri_root(),
        subjects=FMRI_SUBJECTS,
        adapter=config["fmri"].get("adapter") or {},
    log:
        f"{R}/logs/stimuli.log",
    benchmark:
        f"{R}/benchmarks/stimuli.tsv"
    conda:
        "../environment.yml"
    script:
        "scripts/write_stimuli.py"
