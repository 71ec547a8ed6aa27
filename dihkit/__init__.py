"""dihkit: a teaching kit for knowledge distillation through intermediate classifier heads."""

__version__ = "0.1.0"
