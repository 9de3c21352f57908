"""cod-pipeline: few-shot knowledge distillation with counterfactual explanations (CoD)."""

__version__ = "0.1.0"


class ConfigError(ValueError):
    """Bad user input (config, data, model spec). Reported as one line, before heavy work."""
