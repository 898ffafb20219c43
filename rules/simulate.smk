# Simulated BIDS datasets with known ground truth (used when fmri/eeg bids_root is empty).


rule simulate_fmri:
    output:
        dataset_description=f"{SIM}/fmri/dataset_description.json",
    params:
        sim=config["simulate"],
        task=FMRI_TASK,
        seed=config["seed"],
    log:
        f"{R}/logs/simulate_fmri.log",
    benchmark:
        f"{R}/benchmarks/simulate_fmri.tsv"
    resources:
        mem_mb=mem_mb(3000),
        runtime=30,
    conda:
        "../environment.yml"
    script:
        "scripts/simulate_fmri.py"


rule simulate_eeg:
    output:
        dataset_description=f"{SIM}/eeg/dataset_description.json",
    params:
        sim=config["simulate"]["eeg"],
        task=EEG_TASK,
        events=config["eeg"]["events"],
        seed=config["seed"],
    log:
        f"{R}/logs/simulate_eeg.log",
    benchmark:
        f"{R}/benchmarks/simulate_eeg.tsv"
    resources:
        mem_mb=mem_mb(3000),
        runtime=30,
    conda:
        "../environment.yml"
    script:
        "scripts/simulate_eeg.py"
