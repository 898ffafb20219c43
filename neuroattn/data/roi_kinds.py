"""ROI kinds read from ROI names: the one place the workflow's pages and tables learn them.

The simulator names its regions ``ret_<area>`` (retinotopic V1-V3), ``cat_<category>``
(category-selective) and ``shape_V4`` (the optional V4-like, orientation-invariant shape region);
a real dataset's ``V4`` / ``hV4`` is V4-like too.
"""
from __future__ import annotations

__all__ = ["ROI_KINDS", "roi_kind"]

#: Kinds in the order of the visual hierarchy (tables and figures list them so).
ROI_KINDS = ("retinotopic", "V4-like", "category", "other")
_PREFIXES = (("ret_", "retinotopic"), ("cat_", "category"))


def roi_kind(name) -> str:
    """Kind of ROI ``name``: ``retinotopic`` (``ret_*``), ``category`` (``cat_*``), ``V4-like``
    (any other name containing ``V4``) or ``other``.

    Examples
    --------
    >>> [roi_kind(n) for n in ("ret_V1", "cat_star", "shape_V4", "hV4", "FFA")]
    ['retinotopic', 'category', 'V4-like', 'V4-like', 'other']
    """
    s = str(name)
    for prefix, kind in _PREFIXES:
        if s.startswith(prefix):
            return kind
    return "V4-like" if "V4" in s else "other"
