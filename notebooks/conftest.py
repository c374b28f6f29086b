# Notebooks under pytest (nbval) run in fast mode; the kernel inherits this environment.
import os

os.environ.setdefault("FMNIST_LDM_MODE", "fast")
