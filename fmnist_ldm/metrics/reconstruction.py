"""How well the VAE reconstructs real images: MSE, PSNR and SSIM through the posterior mean."""
from __future__ import annotations

import torch

from ..config import Config
from ..data import to_model_range
from ..device import autocast


@torch.no_grad()
def reconstruction_metrics(vae, images_uint8, cfg: Config | None = None, batch: int = 1000) -> dict:
    """Test-set reconstruction through the posterior mean: MSE and PSNR on [0,1] pixels, SSIM."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure
    ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
    se, count = 0.0, 0
    device = vae.scale.device
    ssim = ssim.to(device)
    for i in range(0, len(images_uint8), batch):
        x = to_model_range(images_uint8[i:i + batch].to(device))
        with autocast(device, cfg.bf16 if cfg else True):
            rec = vae.decode(vae.encode(x).mean).float().clamp(-1, 1)
        a, b = (x + 1) / 2, (rec + 1) / 2
        se += (a - b).pow(2).sum().item()
        count += a.numel()
        ssim.update(b, a)
    mse = se / count
    return {"mse": round(mse, 6), "psnr": round(10 * torch.log10(torch.tensor(1 / mse)).item(), 2),
            "ssim": round(ssim.compute().item(), 4)}
