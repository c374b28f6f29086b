"""Judging images: a Fashion-MNIST classifier (the "judge", judge.py), FID and KID in its
penultimate feature space and everything reported about a set of samples (fid.py), precision /
recall, density / coverage and a memorisation check by nearest neighbours in the same space
(neighbours.py), and the VAE's reconstruction MSE / PSNR / SSIM (reconstruction.py).

Every public name is importable from here: `from fmnist_ldm.metrics import evaluate_samples`."""
from ..classifier import Judge
from .fid import (JUDGE_FEATURES, MIN_FID_N, RECOMMENDED_FID_N, REPORTED_N, FewSamplesWarning, check_sample_count,
                  evaluate_samples, evaluation_draw, fid_infinity, fid_kid, fid_over_n, kid_mmd)
from .judge import JUDGE_FILE, class_accuracy, judge_features, load_judge, predict, train_judge
from .neighbours import memorisation, nearest_neighbours, pixel_vectors, precision_recall
from .reconstruction import reconstruction_metrics

__all__ = ["JUDGE_FEATURES", "JUDGE_FILE", "MIN_FID_N", "RECOMMENDED_FID_N", "REPORTED_N", "FewSamplesWarning",
           "Judge", "check_sample_count", "class_accuracy", "evaluate_samples", "evaluation_draw", "fid_infinity",
           "fid_kid", "fid_over_n", "judge_features", "kid_mmd", "load_judge", "memorisation",
           "nearest_neighbours", "pixel_vectors", "precision_recall", "predict", "reconstruction_metrics",
           "train_judge"]
