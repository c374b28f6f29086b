"""The KL-regularised autoencoder: 1x28x28 image <-> C x 7 x 7 latent (Kingma & Welling 2014;
the "first stage" of Rombach et al. 2022). GroupNorm, SiLU and channel attention throughout.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from .device import autocast


def norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c // 4), c)


def pixel_loss(recon, x):
    """L1 + MSE in float32, the reconstruction term of both the VAE and its decoder GAN stage."""
    return F.l1_loss(recon.float(), x) + F.mse_loss(recon.float(), x)


def kl_per_entry(mean, logvar):
    """KL(N(mu, sigma^2) || N(0, 1)) of each latent entry, in nats, the shape of mean:
    1/2 * (mu^2 + sigma^2 - 1 - log sigma^2), with sigma^2 = exp(logvar)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)


def kl_per_channel(mean, logvar):
    """[N, C, H, W] posteriors -> [C]: each latent channel's KL, summed over its H x W entries and
    averaged over the images. About how many nats of information a channel carries per image:
    a channel the encoder leaves at N(0, 1) (mu = 0, sigma = 1) scores 0 and carries nothing."""
    return kl_per_entry(mean, logvar).sum((2, 3)).mean(0)


def latent_scale(mean, std, eps):
    """The one number s that gives the diffusion model unit-variance inputs: s = 1 / std(z) over
    every entry of the latents it sees, the posterior samples z = mu + sigma * eps (not the means).
    mean, std, eps: [N, C, H, W]; train_vae stores it as vae.scale (Rombach et al. 2022, 4.3.2)."""
    return 1.0 / (mean + std * eps).std()


class Posterior(NamedTuple):
    """What the encoder says about an image: the diagonal Gaussian q(z | x) = N(mean, exp(logvar)),
    mean and logvar each [N, C, H, W]. A tuple, so `mean, logvar = vae.encode(x)` works too."""
    mean: torch.Tensor
    logvar: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator=None) -> torch.Tensor:
        """z = mean + std * eps, eps ~ N(0, I) (the reparameterisation trick)."""
        return self.mean + self.std * torch.randn(self.mean.shape, generator=generator, device=self.mean.device)

    def to(self, device) -> "Posterior":
        return Posterior(self.mean.to(device), self.logvar.to(device))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): reweight channels by a gate of their global mean."""

    def __init__(self, c: int, reduction: int = 4):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(c, c // reduction), nn.SiLU(), nn.Linear(c // reduction, c))

    def forward(self, x):
        return x * torch.sigmoid(self.gate(x.mean((2, 3))))[:, :, None, None]


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        return self.skip(x) + self.body(x)


class Encoder(nn.Module):
    def __init__(self, channels=(32, 64, 128), latent_channels=4):
        super().__init__()
        layers = [nn.Conv2d(1, channels[0], 3, padding=1)]
        for i, c in enumerate(channels):
            layers.append(ResBlock(channels[max(i - 1, 0)], c))
            if i < len(channels) - 1:                      # 28 -> 14 -> 7
                layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        layers += [ChannelAttention(channels[-1]), norm(channels[-1]), nn.SiLU(),
                   nn.Conv2d(channels[-1], 2 * latent_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        mean, logvar = self.net(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)


class Decoder(nn.Module):
    def __init__(self, channels=(32, 64, 128), latent_channels=4, blocks: int = 1):
        super().__init__()
        self.channels, self.latent_channels, self.blocks = tuple(channels), latent_channels, blocks
        rev = channels[::-1]
        layers = [nn.Conv2d(latent_channels, rev[0], 3, padding=1), ChannelAttention(rev[0])]
        for i, c in enumerate(rev):
            layers.append(ResBlock(rev[max(i - 1, 0)], c))
            for _ in range(blocks - 1):
                layers.append(ResBlock(c, c))
                layers[-1].added = True                    # marks what `deepened` must initialise
            if i < len(rev) - 1:                           # 7 -> 14 -> 28
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]
        layers += [norm(rev[-1]), nn.SiLU(), nn.Conv2d(rev[-1], 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)

    def deepened(self, blocks: int) -> "Decoder":
        """A copy with `blocks` residual blocks per level, computing exactly what this one does:
        each added block's last convolution starts at zero, so x + body(x) = x (the "zero init"
        of Goyal et al. 2017), and training grows new capacity from the trained decoder."""
        if blocks < self.blocks:
            raise ValueError(f"a decoder with {self.blocks} blocks per level cannot be deepened to {blocks}")
        deeper = Decoder(self.channels, self.latent_channels, blocks)
        old, added_in_level = iter(self.net), 0
        for layer in deeper.net:
            if getattr(layer, "added", False):
                added_in_level += 1
                if added_in_level >= self.blocks:          # a block this decoder lacks: identity
                    nn.init.zeros_(layer.body[-1].weight), nn.init.zeros_(layer.body[-1].bias)
                    continue
            else:
                added_in_level = 0
            layer.load_state_dict(next(old).state_dict())
        return deeper


class VAE(nn.Module):
    def __init__(self, channels=(32, 64, 128), latent_channels=4, decoder_blocks: int = 1):
        super().__init__()
        self.encoder = Encoder(channels, latent_channels)
        self.decoder = Decoder(channels, latent_channels, decoder_blocks)
        # 1/std of the training latents, set from data after training (Rombach et al. sec. 4.3.2):
        # it gives the diffusion model unit-variance inputs, whatever the KL weight did to the scale.
        self.register_buffer("scale", torch.tensor(1.0))

    def encode(self, x) -> Posterior:
        """x in [-1,1], [N,1,28,28] -> Posterior(mean, logvar), each [N,C,7,7]. For many images
        at once, batched and returned on the CPU: `posteriors`."""
        return Posterior(*self.encoder(x))

    def decode(self, z):
        """Unscaled latent [N,C,7,7] -> image [N,1,28,28] (roughly [-1,1]; clip before display)."""
        return self.decoder(z)

    def to_model_space(self, x):
        """Image -> what the diffusion model works on: the posterior mean times the latent scale
        (in float32, also under bf16 autocast)."""
        return self.encode(x).mean.float() * self.scale

    def from_model_space(self, z):
        """The diffusion model's latent -> image: unscaled, then decoded."""
        return self.decode(z / self.scale)

    def forward(self, x, generator=None):
        posterior = self.encode(x)
        return self.decode(posterior.sample(generator)), posterior.mean, posterior.logvar

    @staticmethod
    def kl(mean, logvar):
        # KL(N(mu, sigma^2) || N(0, 1)) = 1/2 * sum(mu^2 + sigma^2 - 1 - log sigma^2), per image
        return kl_per_entry(mean, logvar).flatten(1).sum(1).mean()

    def loss(self, x, kl_weight: float, generator=None):
        recon, mean, logvar = self(x, generator)
        rec = pixel_loss(recon, x)
        kl = self.kl(mean.float(), logvar.float())
        # the parts stay tensors: reading them (.item()) at every step would wait for the GPU
        return rec + kl_weight * kl, {"rec": rec.detach(), "kl": kl.detach()}


@torch.no_grad()
def posteriors(vae: VAE, images: torch.Tensor, *, bf16: bool = True, batch: int = 1000) -> Posterior:
    """The Posterior of every image, encoded `batch` at a time on the VAE's device (under autocast
    where bf16 is fast there) and returned in float32 on the CPU, from images on any device, so
    that a caller never mixes devices: the UNet's training data, and the notebooks' latents."""
    means, logvars = [], []
    device = vae.scale.device
    with autocast(device, bf16):
        for i in range(0, len(images), batch):
            mean, logvar = vae.encode(images[i:i + batch].to(device))
            means.append(mean.float().cpu())
            logvars.append(logvar.float().cpu())
    return Posterior(torch.cat(means), torch.cat(logvars))


class PatchDiscriminator(nn.Module):
    """A 7x7 grid of real-or-decoded logits for a 28x28 image (PatchGAN, Isola et al. 2017): the
    adversarial half of the first-stage loss of Esser et al. 2021 and Rombach et al. 2022.

    The logits do not judge separate 7x7 patches. Through the convolutions alone (kernels 4, 4,
    3, 3 at strides 2, 2, 1, 1) each logit sees a 26x26 window, 4 + 3*2 + 2*4 + 2*4 = 26, which
    the zero padding cuts to 15x15 real pixels at the corners; neighbouring windows overlap by
    22 pixels. And each GroupNorm normalises with statistics of the whole image, so every logit
    depends, weakly, on all 784 pixels (the gradient check in tests/test_receptive_field.py).
    What the grid adds over one logit is 49 overlapping, nearly image-sized views, each with its
    own position in the hinge loss."""

    def __init__(self, c: int = 64):
        super().__init__()
        act = nn.LeakyReLU(0.2)
        self.net = nn.Sequential(nn.Conv2d(1, c, 4, 2, 1), act,                     # 28 -> 14
                                 nn.Conv2d(c, 2 * c, 4, 2, 1), norm(2 * c), act,    # 14 -> 7
                                 nn.Conv2d(2 * c, 2 * c, 3, 1, 1), norm(2 * c), act,
                                 nn.Conv2d(2 * c, 1, 3, 1, 1))                      # 7x7 logits

    def forward(self, x):
        return self.net(x)


class DecoderGAN(nn.Module):
    """Sharpens a trained decoder with the encoder frozen, so the latents (and any UNet trained on
    them) stay valid. A pixel loss alone makes the decoder draw the *mean* of all garments a
    latent could be, i.e. blur; the discriminator penalises blur that real images never have."""

    def __init__(self, decoder: Decoder, disc: PatchDiscriminator | None = None):
        super().__init__()
        self.decoder, self.disc = decoder, disc or PatchDiscriminator()

    def loss(self, x, z, adv_weight: float):
        """One loss for one optimiser (simultaneous gradient steps), hinge GAN (Lim & Ye 2017):
        decoder: L1 + MSE - w * D(fake);  discriminator: relu(1 - D(real)) + relu(1 + D(fake))."""
        fake = self.decoder(z)
        rec = pixel_loss(fake, x)
        # the decoder's term sees D through detached weights: D must not learn to help the decoder
        frozen = {k: v.detach() for k, v in self.disc.named_parameters()}
        g_adv = -functional_call(self.disc, frozen, (fake,)).float().mean()
        d_loss = (F.relu(1 - self.disc(x).float()).mean()
                  + F.relu(1 + self.disc(fake.detach()).float()).mean())
        return rec + adv_weight * g_adv + d_loss, {"rec": rec.detach(), "g_adv": g_adv.detach(),
                                                   "d": d_loss.detach()}
