# EEG decoders (BaseNet + channel attention, EEGNet, ShallowConvNet, CSP+LDA, TS+LR): one job per
# subject x protocol runs every configured model (one start-up, one data load).
# `within`: train session 1, test session 2; `within_session`: stratified k-fold CV inside each
# session; `loso`: the subject held out, trained on the others.
EM = config["eeg_models"]
EEG_PROTOCOLS = [p for p in EM["protocols"] if p != "loso" or len(EEG_SUBJECTS) > 1]  # loso needs 2+ subjects


rule eeg_model:
    input:
        epochs=eeg_model_inputs,
    output:
        scores=f"{R}/sub-{{subject}}/eeg/models/sub-{{subject}}_protocol-{{protocol}}_scores.tsv",
        pred=f"{R}/sub-{{subject}}/eeg/models/sub-{{subject}}_protocol-{{protocol}}_pred.h5",
    params:
        cfg=EM,
        align=config["eeg"].get("euclidean_alignment", True),
        epoch_tmin=config["eeg"].get("tmin", 0.0),
        seed=config["seed"],
        device=config["device"],
    log:
        f"{R}/logs/eeg_model/sub-{{subject}}_protocol-{{protocol}}.log",
    benchmark:
        f"{R}/benchmarks/eeg_model/sub-{{subject}}_protocol-{{protocol}}.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(3000),
        runtime=60,
    conda:
        "../environment.yml"
    script:
        "scripts/eeg_model.py"


SCORE_FILES += expand(
    rules.eeg_model.output.scores,
    subject=EEG_SUBJECTS,
    protocol=EEG_PROTOCOLS,
)


# Simulated EEG only: do the channel maps (activation pattern, importance) peak on the channels the
# simulator made class-discriminative (derivatives/truth/truth.json)? A real dataset has no truth
# (rules/common.smk: EEG_SIMULATED, eeg_truth_files).


rule eeg_truth:
    input:
        preds=lambda w: expand(rules.eeg_model.output.pred, subject=w.subject, protocol=EEG_PROTOCOLS),
        dataset=eeg_dataset(),
    output:
        table=f"{R}/sub-{{subject}}/eeg/models/sub-{{subject}}_desc-truthcheck.tsv",
    params:
        truth=f"{SIM}/eeg/derivatives/truth/truth.json",
    log:
        f"{R}/logs/eeg_truth/sub-{{subject}}.log",
    threads: 1
    resources:
        mem_mb=mem_mb(1000),
        runtime=10,
    conda:
        "../environment.yml"
    script:
        "scripts/eeg_truth.py"

