"""The wheel's packages: every package under fmnist_ldm/, found, so that a new sub-package is never
left out, and the shipped weights' folder model/ as fmnist_ldm.model (pyproject.toml maps it and
names its files). Everything else is in pyproject.toml; pyproject.toml alone cannot add a package
that is not a folder of fmnist_ldm/ to the ones it finds."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["fmnist_ldm", "fmnist_ldm.*"]) + ["fmnist_ldm.model"])
