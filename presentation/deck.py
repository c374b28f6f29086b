# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # Stable Diffusion in miniature
# A latent diffusion model for Fashion-MNIST, trained on **2 CPU cores**: VAE 11.7 min on an AMD EPYC with
# AVX-512 bf16; decoder-sharpening stage 17.4 min and UNet 78.2 min on an AMD EPYC with AVX2, float32.
#
# ![samples](../assets/generated_samples.png)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Step 1 · compress: a VAE, 28×28 → 4×7×7
# 1.01 M parameters, 11.7 min of training (AVX-512 bf16 EPYC); then the decoder is fine-tuned against a patch
# discriminator (encoder frozen). Test reconstructions: PSNR 26.0 dB, SSIM 0.950 (10,000 test images);
# FID of reconstructions 3.24 → 1.56 (real-vs-real 0.70, n = 5,000).
#
# ![latent space](../assets/denoising_path_bag.png)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Step 2 · denoise: a UNet over latents
# 1.65 M parameters, 7×7 → 4×4 → 7×7, class by cross-attention to 4 tokens per class and
# an embedding added to the timestep embedding; 30 epochs (78.2 min on a 2-core AMD EPYC, AVX2, float32).
#
# ![one reverse run](../assets/denoising_path_sneaker.png)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Clean → noise → a new clean garment
# The way back is a real reverse diffusion run (20 DPM-Solver++ steps), not the forward frames replayed.
#
# ![dress](../assets/diffusion_dress.gif) ![sneaker](../assets/diffusion_sneaker.gif) ![bag](../assets/diffusion_bag.gif)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Measured, not claimed
# 5,000 samples, 20 steps, guidance 5 in t ∈ [300, 700]:
#
# | | value | target |
# |---|---:|---:|
# | class accuracy (judge, 93.8 % on real test) | 97.8 % | ≥ 97 % |
# | FID / real-vs-real FID | 3.4 (6.6 before the adversarial decoder) | ≤ 1.5 |
# | images per second (2-core AMD EPYC, AVX2, float32, eager) | 43 | ≥ 200 |
#
# What moved FID: the adversarial decoder, 4.62 → 2.54 on the same samples (more L1 + MSE epochs alone: 4.55);
# then the class in the timestep embedding too, and guidance only in [300, 700]: 2.61 → 2.38.
# What is left: the VAE's reconstructions still score 2.2× the real-vs-real FID (n = 5,000).
# A wider latent (8×7×7) lowers that floor to 1.67×, but the same UNet models it less well: samples 2.90, not 2.38.
# A deeper decoder leaves the floor at 2.2×, and Min-SNR-5 loss weighting leaves the samples at 2.40: measured, not shipped.
# And the ratio itself depends on n: the same samples read 1.69 at n = 1,000 and 5.90 at n = 10,000 (real-vs-real tends to 0);
# FID − real-vs-real stays about 1.6 (`benchmark.py n-sweep`).
#
# ![table](../benchmarks/results.png)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Four steps instead of twenty: a distilled student
# A copy of the UNet learns where the teacher's guided 20-step runs end, from any of their states
# (33,000 runs, 16.0 min; 2,500 steps, 27.8 min; 2-core AMD EPYC, AVX2). Guidance is built in.
#
# | 5,000 images | UNet passes | images/s | accuracy | FID − real-vs-real |
# |---|---:|---:|---:|---:|
# | teacher, 20 steps | 28 | 41.7 | 97.8 % | 1.67 |
# | teacher, 4 steps | 5 | 148.6 | 98.5 % | 4.15 |
# | student, 4 steps | 4 | 172.6 | 98.4 % | 2.12 |
# | student, 1 step | 1 | 302.1 | 97.5 % | 2.49 |
#
# ![teacher and student](../assets/distilled_vs_teacher.png)
