"""neuroattn: attention-based brain models, from BIDS data to Brain-Score-style scores.

Subpackages
-----------
data      simulated BIDS datasets, BIDS discovery, fMRI GLM betas, EEG epochs, real-data adapters
features  vision backbones, layer hooks, token grids, feature caches
models    routing encoder, in-context encoder/decoder, BaseNet with channel attention, baselines
metrics   predictivity, noise ceilings, RSA/CKA/SSM, retrieval and decoding scores
report    per-subject and group HTML reports
"""

__version__ = "0.1.0"
