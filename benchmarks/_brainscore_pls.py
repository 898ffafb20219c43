"""brainscore_vision's own ``pls`` metric on saved arrays (runs inside a brainscore_vision venv).

Called by ``benchmarks/metrics.py`` with the python of a separate environment (brainscore_vision
needs numpy<2 and scikit-learn<1.6, so it cannot share the project's).  Imports only numpy and
brainscore; never imports neuroattn.

Usage: python _brainscore_pls.py X.npy Y.npy [--stratify labels.npy]
Prints one JSON line: seconds (wall, metric call only), cpu_seconds, score (mean over splits of the
median unit r, unceiled), per_split medians, numpy / scikit-learn / brainscore versions.
"""
from __future__ import annotations

import json
import os
import sys
import time
import warnings

os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")   # never pip-install plugin requirements

import numpy as np  # noqa: E402


def main(argv):
    import brainscore_vision
    import sklearn
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
    from brainscore_vision.metrics.regression_correlation.metric import (
        CrossRegressedCorrelation, pearsonr_correlation, pls_regression)

    X, Y = np.load(argv[0]), np.load(argv[1])
    strat = np.load(argv[argv.index("--stratify") + 1]) if "--stratify" in argv else None
    n = len(X)

    def assembly(values, prefix):
        # a second presentation coord keeps brainio's MultiIndex (one coord alone becomes the dim index)
        coords = {"stimulus_id": ("presentation", np.arange(n)), "image_index": ("presentation", np.arange(n)),
                  "neuroid_id": ("neuroid", [f"{prefix}{i}" for i in range(values.shape[1])]),
                  "region": ("neuroid", ["IT"] * values.shape[1])}
        if strat is not None:
            coords["object_name"] = ("presentation", strat)
        return NeuroidAssembly(values, coords=coords, dims=["presentation", "neuroid"])

    source, target = assembly(X, "f"), assembly(Y, "u")
    # the registry's 'pls' is CrossRegressedCorrelation(pls_regression(), pearsonr_correlation());
    # built here directly so the stratification can be switched off for unlabelled stimuli
    cv = {} if strat is not None else {"stratification_coord": None}
    if strat is not None:
        metric = brainscore_vision.load_metric("pls")
    else:
        metric = CrossRegressedCorrelation(regression=pls_regression(), correlation=pearsonr_correlation(),
                                           crossvalidation_kwargs=cv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c, t = time.process_time(), time.perf_counter()
        score = metric(source, target)
        dt, dc = time.perf_counter() - t, time.process_time() - c
    raw = score.raw if hasattr(score, "raw") else score.attrs["raw"]
    per_split = raw.median("neuroid").values.tolist() if "neuroid" in raw.dims else None
    print(json.dumps({"seconds": dt, "cpu_seconds": dc, "score": float(score.values), "per_split": per_split,
                      "numpy": np.__version__, "sklearn": sklearn.__version__,
                      "brainscore_vision": getattr(brainscore_vision, "__version__", "?")}))


if __name__ == "__main__":
    main(sys.argv[1:])
