# EEG: MNE preprocessing of BIDS motor-imagery recordings into epochs.


rule eeg_epochs:
    input:
        dataset=eeg_dataset,
    output:
        epochs=f"{R}/sub-{{subject}}/eeg/sub-{{subject}}_task-{EEG_TASK}_epo.fif",
        table=f"{R}/sub-{{subject}}/eeg/sub-{{subject}}_task-{EEG_TASK}_desc-epochs.tsv",
    params:
        bids_root=eeg_root(),
        format=EEG_FORMAT,
        adapter=config["eeg"].get("adapter") or {},
        eeg={k: v for k, v in config["eeg"].items() if k not in ("bids_root", "subjects")},
    log:
        f"{R}/logs/eeg_epochs/sub-{{subject}}.log",
    benchmark:
        f"{R}/benchmarks/eeg_epochs/sub-{{subject}}.tsv"
    resources:
        mem_mb=mem_mb(3000),
        runtime=30,
    conda:
        "../environment.yml"
    script:
        "scripts/eeg_epochs.py"
