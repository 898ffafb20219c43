"""Rule routing_truth: compare a routing encoder's maps with the simulation's true routing."""
from neuroattn.models.encoding import routing_truth_check
from neuroattn.utils import atomic_path, setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821
inp, out = snakemake.input, snakemake.output[0]  # noqa: F821
table = routing_truth_check(inp.pred, snakemake.params.truth, inp.betas)  # noqa: F821
with atomic_path(out) as tmp:
    table.to_csv(tmp, sep="\t", index=False, float_format="%.4g")
for (measure), g in table.groupby("measure"):
    log.info("%s: median %.3f (reference %.3f) over %d queries", measure, g.value.median(), g.reference.median(), len(g))
