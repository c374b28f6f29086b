"""Checks for the notebooks' exercises: one `check_<name>(student_fn)` per exercise, one module
per notebook (data = 01, vae = 02, unet = 03, diffusion = 04, application = 05, evaluation = 06,
distillation = 07); grading.py holds what they share. A notebook imports its checkers from here:
`from fmnist_ldm.course.exercises import check_kl`."""
from . import application, data, diffusion, distillation, evaluation, unet, vae
from .application import *   # noqa: F401,F403
from .data import *           # noqa: F401,F403
from .diffusion import *      # noqa: F401,F403
from .distillation import *   # noqa: F401,F403
from .evaluation import *     # noqa: F401,F403
from .unet import *           # noqa: F401,F403
from .vae import *            # noqa: F401,F403

NOTEBOOK_MODULES = {"01": data, "02": vae, "03": unet, "04": diffusion, "05": application,
                    "06": evaluation, "07": distillation}
__all__ = [name for module in NOTEBOOK_MODULES.values() for name in module.__all__]
