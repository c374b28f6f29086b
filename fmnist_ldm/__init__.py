"""fmnist_ldm: a latent diffusion model (VAE + UNet denoiser) for Fashion-MNIST, small enough
to train on a laptop CPU. See the README for the tour."""
from .config import Config, preset
from .data import CLASS_NAMES, load_fashion_mnist
from .pipeline import Pipeline

__all__ = ["Config", "preset", "CLASS_NAMES", "load_fashion_mnist", "Pipeline"]
__version__ = "0.1.0"
