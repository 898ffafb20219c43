# Per-subject and group HTML reports (self-contained pages).


localrules:
    subject_report,
    group_report,


rule subject_report:
    input:
        unpack(subject_report_inputs),
        truthcheck=eeg_truth_files,  # simulated EEG only (else empty)
    output:
        html=report(f"{R}/sub-{{subject}}/report.html", category="Subjects", labels={"subject": "{subject}"}),
    params:
        config=config,
        configfiles=[str(f) for f in workflow.configfiles],
        dseg=lambda w: fmri_dseg(w.subject),
        stimuli_dir=stimuli_dir(),
        # simulated fMRI with a routing encoder: the truth file (true routing outlines, content-routing overlays)
        sim_truth=lambda w: fmri_truth_path(w.subject) if "routing" in config["encode"]["models"] else "",
    log:
        f"{R}/logs/report/sub-{{subject}}.log",
    conda:
        "../environment.yml"
    script:
        "scripts/subject_report.py"


rule group_report:
    input:
        leaderboard=f"{R}/scores/leaderboard.tsv",
        features=expand(f"{R}/features/{{backbone}}/features.h5", backbone=sorted(ENCODED_BACKBONES) if FMRI_SUBJECTS else []),  # none without fMRI
        layers=COMMITMENT_LAYER_FILES,
        subsampling=SUBSAMPLING_FILES,
        truthcheck=eeg_truth_files(),  # simulated EEG only (else empty)
        routing_truth=routing_truth_files(),  # simulated fMRI only (else empty)
        comparison=COMPARISON_TABLES,  # scoring.backbones set (config/crossvit.yaml) only
    output:
        html=report(f"{R}/report.html", category="Group"),
    params:
        config=config,
        configfiles=[str(f) for f in workflow.configfiles],
    log:
        f"{R}/logs/report/group.log",
    conda:
        "../environment.yml"
    script:
        "scripts/group_report.py"
