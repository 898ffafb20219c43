"""Train/test split of the stimuli, shared by every fMRI model.

The test images are those seen by every subject (NSD's "shared" images): cross-subject decoding
needs them, and every encoder is scored on the same held-out set. The split is a TSV with
columns ``image``, ``split`` (``train`` / ``test``) and ``n_subjects``.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..utils import atomic_path


def shared_split(subject_images: Mapping[str, Sequence[str]], test_list: Sequence[str] | None = None) -> pd.DataFrame:
    """Split images into train and test.

    Parameters
    ----------
    subject_images : mapping of subject -> images that subject saw
    test_list : sequence of str, optional
        Explicit test images; by default the images every subject saw.

    Returns
    -------
    DataFrame with columns ``image``, ``split``, ``n_subjects``, sorted by image.
    """
    if not subject_images:
        raise ValueError("no subjects to split images over")
    counts = Counter(im for ims in subject_images.values() for im in set(map(str, ims)))
    n_sub = len(subject_images)
    if test_list is None:
        test = {im for im, c in counts.items() if c == n_sub}
        if n_sub == 1 or not test:
            raise ValueError(
                "no image was seen by every subject ("
                + ", ".join(f"sub-{s}" for s in subject_images)
                + "): give an explicit list of test images (fmri.test_images: <file>)"
            )
    else:
        test = set(map(str, test_list))
    df = pd.DataFrame({"image": sorted(counts)})
    df["split"] = np.where(df["image"].isin(test), "test", "train")
    df["n_subjects"] = df["image"].map(counts).astype(int)
    return df


def write_split(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)


def read_split(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (train_images, test_images), each sorted."""
    df = pd.read_csv(path, sep="\t", dtype={"image": str})
    if not {"image", "split"} <= set(df.columns):
        raise ValueError(f"{path}: an image split needs columns 'image' and 'split'")
    return (np.sort(df.loc[df.split == "train", "image"].to_numpy(str)),
            np.sort(df.loc[df.split == "test", "image"].to_numpy(str)))
