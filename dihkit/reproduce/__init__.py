"""Reproduce the papers' tables from the experiment files in ``configs/``
(``dihkit reproduce``): read and validate an experiment, resolve a profile, run its teachers,
heads and students resumably, and write the results beside the paper's numbers."""

from dihkit.reproduce.config import RECIPE_PROFILES, Experiment, experiment_names
from dihkit.reproduce.loading import load_experiment
from dihkit.reproduce.plan import Job, Resolved, plan_jobs, resolve_profile
from dihkit.reproduce.runner import Runner

__all__ = [
    "RECIPE_PROFILES",
    "Experiment",
    "Job",
    "Resolved",
    "Runner",
    "experiment_names",
    "load_experiment",
    "plan_jobs",
    "resolve_profile",
]
