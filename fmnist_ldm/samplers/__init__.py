"""The samplers, one per file, behind one interface (base.Sampler: the timesteps it visits; one
step from the state and the network's guess), and the registry that the command line, the
Pipeline and the notebooks read: a new sampler is one new file and one line here."""
from __future__ import annotations

from ..config import one_of
from .base import Sampler
from .consistency import Consistency
from .ddim import DDIM
from .ddpm import DDPM
from .dpmpp2m import DPMSolverPP2M

SAMPLERS: dict[str, type[Sampler]] = {s.name: s for s in (DDPM, DDIM, DPMSolverPP2M, Consistency)}


def sampler_class(name: str) -> type[Sampler]:
    """The sampler registered as `name`; anything else a ValueError starting with "sampler"."""
    if not isinstance(name, str) or name not in SAMPLERS:
        raise ValueError(f"sampler must be {one_of(SAMPLERS)}, not {name!r}")
    return SAMPLERS[name]


def make_sampler(name: str, schedule, generator=None, **options) -> Sampler:
    """A fresh sampler for one run, given those of `options` its constructor takes (e.g. eta for
    DDIM, teacher_timesteps for the distilled student)."""
    cls = sampler_class(name)
    return cls(schedule, generator, **{k: v for k, v in options.items() if k in cls.options})
