# Per-subject and group HTML reports (self-contained pages).


rule subject_report:
    input:
        leaderboard=f"{R}/scores/leaderboard.tsv",
    output:
        f"{R}/sub-{{subject}}/report.html",
    params:
        results=R,
        config=config,
    log:
        f"{R}/logs/report/sub-{{subject}}.log",
    script:
        "scripts/subject_report.py"


rule group_report:
    input:
        leaderboard=f"{R}/scores/leaderboard.tsv",
    output:
        f"{R}/report.html",
    params:
        results=R,
        config=config,
    log:
        f"{R}/logs/report/group.log",
    script:
        "scripts/group_report.py"
