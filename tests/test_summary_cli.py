"""`neuroattn summary results/`: the README's "What to expect" table from a leaderboard (issue 18),
checked on a hand-made leaderboard whose means and SEMs are computed by hand below."""
import pandas as pd

from neuroattn.cli import main
from neuroattn.leaderboard import score_row, write_scores
from neuroattn.report.expect import markdown_table, summary_markdown

# noise-normalised r2 per subject: {model: {subject: {target: value}}}
NNR2 = {"routing": {"01": {"ret_V1": 0.5, "ret_V2": 0.7, "cat_face": 0.2},
                    "02": {"ret_V1": 0.4, "ret_V2": 0.6, "cat_face": 0.1},
                    "03": {"ret_V1": 0.8, "ret_V2": 0.6, "cat_face": 0.3}},
        "ridge_grid": {"01": {"ret_V1": 0.3, "ret_V2": 0.5, "cat_face": 0.25},
                       "02": {"ret_V1": 0.2, "ret_V2": 0.4, "cat_face": 0.25},
                       "03": {"ret_V1": 0.5, "ret_V2": 0.5, "cat_face": 0.25}}}
# By hand: a subject's value of a kind is its mean over the kind's targets.
#   routing ret: 0.6, 0.5, 0.7 -> mean 0.6, sd 0.1, SEM 0.1/sqrt(3) = 0.0577; cat: 0.2, 0.1, 0.3 -> 0.2 +- 0.0577
#   ridge_grid ret: 0.4, 0.3, 0.5 -> 0.4 +- 0.0577; cat: 0.25 x 3 -> 0.25 +- 0
#   EEG basenet within: 0.8, 0.6 -> mean 0.7, sd 0.1414, SEM 0.1; chance 1/4
EXPECTED = """#### FMRI noise_normalized_r2

| target kind | rank | model | mean ± SEM | chance | ceiling | subjects |
| --- | --- | --- | --- | --- | --- | --- |
| cat | 1 | ridge_grid | 0.250 ± 0.000 |  | 1 | 3 |
| cat | 2 | routing | 0.200 ± 0.058 |  | 1 | 3 |
| ret | 1 | routing | 0.600 ± 0.058 |  | 1 | 3 |
| ret | 2 | ridge_grid | 0.400 ± 0.058 |  | 1 | 3 |

#### EEG accuracy

| target kind | rank | model | mean ± SEM | chance | ceiling | subjects |
| --- | --- | --- | --- | --- | --- | --- |
| within | 1 | basenet | 0.700 ± 0.100 | 0.25 |  | 2 |"""


def _leaderboard():
    rows = [score_row(s, "fmri", model, target, "noise_normalized_r2", v, n=100)
            for model, subs in NNR2.items() for s, targets in subs.items() for target, v in targets.items()]
    rows += [score_row(s, "eeg", "basenet", "within", "accuracy", v, n=96, n_classes=4)
             for s, v in (("01", 0.8), ("02", 0.6))]
    # left out of the summary: pooled rows and per-layer rows (values that would change every mean)
    rows += [score_row("group", "fmri", "routing", "ret_V1", "noise_normalized_r2", 9.0),
             score_row("01", "fmri", "smallcnn_layer3", "ret_V1", "noise_normalized_r2", 9.0,
                       backbones=["smallcnn"])]
    return pd.DataFrame(rows)


def test_summary_prints_the_hand_computed_table(tmp_path, capsys):
    lb = _leaderboard()
    assert set(lb.loc[lb.model == "smallcnn_layer3", "family"]) == {"layer"}
    write_scores(tmp_path / "results" / "scores" / "leaderboard.tsv", lb)
    assert main(["summary", str(tmp_path / "results")]) == 0
    assert capsys.readouterr().out.strip() == EXPECTED
    # the TSV itself works too, and the function gives the same text
    assert main(["summary", str(tmp_path / "results" / "scores" / "leaderboard.tsv")]) == 0
    assert capsys.readouterr().out.strip() == EXPECTED == summary_markdown(lb)


def test_summary_changes_with_the_numbers(tmp_path, capsys):
    """The check can fail: one subject's value moved changes the printed mean and the ranking."""
    lb = _leaderboard()
    lb.loc[(lb.subject == "02") & (lb.model == "ridge_grid") & (lb.target == "cat_face"), "value"] = 0.01
    text = summary_markdown(lb)
    assert text != EXPECTED
    assert "| cat | 1 | routing | 0.200 ± 0.058 |  | 1 | 3 |" in text
    assert "| cat | 2 | ridge_grid | 0.170 ± 0.080 |  | 1 | 3 |" in text  # mean (0.25 + 0.01 + 0.25) / 3, sd 0.139, SEM 0.139 / sqrt(3)


def test_summary_refuses_a_folder_without_leaderboard(tmp_path, capsys):
    assert main(["summary", str(tmp_path)]) == 2
    assert "no leaderboard" in capsys.readouterr().err
    write_scores(tmp_path / "lb.tsv", [score_row("group", "fmri", "routing", "ret_V1", "noise_normalized_r2", 0.5)])
    assert main(["summary", str(tmp_path / "lb.tsv")]) == 2  # pooled rows only: nothing per subject
    assert "none of the summarised metrics" in capsys.readouterr().err


def test_markdown_table_cells():
    t = pd.DataFrame({"a": ["x"], "b": [float("nan")], "c": [0.123456], "d": [3]})
    assert markdown_table(t) == "| a | b | c | d |\n| --- | --- | --- | --- |\n| x |  | 0.123 | 3 |"
