"""The wheel's packages: every package under fmnist_ldm/, found, so that a new sub-package is never
left out, the shipped weights' folder model/ as fmnist_ldm.model and the lab's page lab/ as
fmnist_ldm.lab_page (pyproject.toml maps both and names their files). Everything else is in pyproject.toml; pyproject.toml alone cannot add a package
that is not a folder of fmnist_ldm/ to the ones it finds."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["fmnist_ldm", "fmnist_ldm.*"]) + ["fmnist_ldm.model", "fmnist_ldm.lab_page"])
