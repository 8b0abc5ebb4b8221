"""The one thing pyproject.toml cannot say with package discovery: the repository's top-level kernels/ folder is
installed as the subpackage sgaplus.kernels. Metadata, dependencies and package data stay in pyproject.toml."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["sgaplus", "sgaplus.*"]) + ["sgaplus.kernels"],
      package_dir={"sgaplus.kernels": "kernels"})
