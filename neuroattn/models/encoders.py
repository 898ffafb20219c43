"""The fMRI-encoder registry (:data:`ENCODERS`): the one list of the ``encode`` rule's models.

Each entry: the estimator factory, its config section (``encode.<section>``), what it produces
beyond predictions (``maps``: per-query maps in the prediction file; ``voxel_maps``: per-voxel
routing maps), ``trained`` (a torch model taking ``random_state``, ``device`` and
``checkpoint_dir``) and ``maps`` (a function ``(estimator, X_test, test_images, n_examples,
voxel_maps) -> dict`` for the prediction file's ``attention`` group). Factories import their
estimators lazily, so that reading the registry (Snakefile, schema test) stays cheap.
"""
from __future__ import annotations

from ..registry import Registry

__all__ = ["ENCODERS", "make_encoder"]

ENCODERS = Registry("fMRI encoder")


def _ridge(features):
    def factory(alphas=None, cv=5):
        from .baselines import RidgeEncoder
        from .ridge import DEFAULT_ALPHAS

        return RidgeEncoder(features=features, alphas=DEFAULT_ALPHAS if alphas is None else alphas, cv=cv)
    factory.__name__ = f"ridge_{features}"
    return factory


def _attention_maps(est, X_test, test_images, n_examples, voxel_maps):
    att = est.attention_maps(X_test)
    maps = {"kind": "attention", "rois": list(est.query_names_), "mean": att.mean(axis=0),
            "per_image": att, "examples": att[:n_examples], "example_images": test_images[:n_examples]}
    if voxel_maps:
        maps["voxel_maps"] = est.voxel_maps(X_test[:voxel_maps])
    return maps


def _spatial_maps(est, X_test, test_images, n_examples, voxel_maps):
    return {"kind": "spatial_map", "rois": list(est.query_names_), "mean": est.spatial_maps()}


def _signature_of(cls_path):
    """Expose the estimator's own signature on a lazy factory, so that Registry.build checks it."""
    import importlib
    import inspect

    mod, name = cls_path.split(":")
    cls = getattr(importlib.import_module(mod, __package__), name)
    return inspect.signature(cls.__init__).replace(
        parameters=[p for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"])


class _Lazy:
    """A factory that imports its estimator class only when called or inspected."""

    def __init__(self, cls_path):
        self.cls_path = cls_path

    def __call__(self, **params):
        import importlib

        mod, name = self.cls_path.split(":")
        return getattr(importlib.import_module(mod, __package__), name)(**params)

    @property
    def __signature__(self):
        return _signature_of(self.cls_path)


ENCODERS.register("routing", _Lazy(".routing:RoutingEncoder"), config_section="encode.routing",
                  produces=("maps", "voxel_maps"), trained=True, maps=_attention_maps)
ENCODERS.register("ridge_pooled", _ridge("pooled"), config_section="encode.ridge", trained=False)
ENCODERS.register("ridge_grid", _ridge("grid"), config_section="encode.ridge", trained=False)
ENCODERS.register("spatial_feature", _Lazy(".spatial_feature:SpatialFeatureEncoder"),
                  config_section="encode.spatial_feature", produces=("maps",), trained=True, maps=_spatial_maps)


def config_key(name: str) -> str:
    """The key under ``encode:`` of the config section of encoder ``name`` (e.g. ``ridge``)."""
    return ENCODERS[name].config_section.split(".", 1)[1]


def make_encoder(name: str, params: dict | None = None, *, seed: int = 0, device: str = "auto",
                 checkpoint_dir=None):
    """The estimator of encoder ``name`` with config ``params``; unknown names and keys are refused.

    Trained (torch) encoders also get ``random_state=seed``, ``device`` and ``checkpoint_dir``.
    """
    params = dict(params or {})
    if ENCODERS[name].meta.get("trained"):
        params.update(random_state=seed, device=device)
        if checkpoint_dir is not None:
            params["checkpoint_dir"] = checkpoint_dir
    return ENCODERS.build(name, **params)
