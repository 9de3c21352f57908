"""cod-pipeline: few-shot knowledge distillation with counterfactual explanations (CoD)."""

__version__ = "0.1.0"


class ConfigError(ValueError):
    """Bad user input (config, data, model spec). Reported as one line, before heavy work."""


def target_class(target, base: type, where: str) -> type:
    """The class a config's ``_target_`` names, checked to be a ``base``; one line otherwise."""
    import hydra.utils

    try:
        cls = hydra.utils.get_class(str(target))
    except Exception as e:  # noqa: BLE001 - hydra wraps import errors in several types
        raise ConfigError(f"{where}._target_={target!r} is not an importable class: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{where}._target_={target!r} is not a {base.__name__}")
    return cls


_API = {"compose": "api", "run": "api", "load_teacher": "api", "generate_cfes": "api", "conf_dir": "api",
        "load_student": "predict", "export_student": "export"}


def __getattr__(name: str):
    """The Python API (``cod_pipeline.compose``, ``run``, ``load_student`` …), imported on first use:
    ``import cod_pipeline`` stays light (no torch)."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f"cod_pipeline.{_API[name]}"), name)
    raise AttributeError(f"module 'cod_pipeline' has no attribute {name!r}")


__all__ = ["ConfigError", "target_class", *_API]
