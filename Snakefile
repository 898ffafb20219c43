# neuroattn workflow: BIDS fMRI/EEG -> betas, epochs, features -> attention models -> scores, reports.
# Rules stay short; the science is in the `neuroattn` package (rules/scripts/*.py call into it).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/stimuli.smk"
include: "rules/fmri.smk"
include: "rules/features.smk"
include: "rules/encode.smk"
include: "rules/decode.smk"
include: "rules/eeg.smk"
include: "rules/eeg_models.smk"
include: "rules/score.smk"
include: "rules/report.smk"


rule all:
    input:
        f"{R}/scores/leaderboard.tsv",
        f"{R}/report.html",
        expand(f"{R}/sub-{{subject}}/report.html", subject=ALL_SUBJECTS),
    default_target: True



onsuccess:
    # the run ends by saying where to look (the pages exist once rule all has run)
    if Path(R, "report.html").is_file():
        print(f"neuroattn: group report {Path(R, 'report.html').resolve()} "
              f"(subjects: {Path(R).resolve()}/sub-<subject>/report.html)")
    print(f"neuroattn: leaderboard {Path(R, 'scores', 'leaderboard.tsv').resolve()}")
