"""Data: simulated BIDS datasets, BIDS discovery, fMRI betas, EEG epochs, real-data adapters."""
