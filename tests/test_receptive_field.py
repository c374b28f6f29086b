"""What each of the patch discriminator's 7x7 logits sees, by gradient: which input pixels move it."""
import torch
import torch.nn as nn

from fmnist_ldm.vae import PatchDiscriminator


def seen(model, i, j):
    """Boolean [28, 28]: the pixels whose gradient on logit (i, j) is not zero."""
    x = torch.randn(1, 1, 28, 28, dtype=torch.float64, requires_grad=True)
    grad, = torch.autograd.grad(model(x)[0, 0, i, j], x)
    return grad[0, 0] != 0


def window(mask):
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    return (rows.min().item(), rows.max().item()), (cols.min().item(), cols.max().item())


def test_every_logit_sees_the_whole_image_through_groupnorm():
    torch.manual_seed(0)
    disc = PatchDiscriminator().double()
    assert disc(torch.zeros(1, 1, 28, 28, dtype=torch.float64)).shape == (1, 1, 7, 7)
    for i, j in [(0, 0), (3, 3), (6, 6), (0, 6)]:
        assert seen(disc, i, j).all()


def test_the_convolutions_alone_see_a_26_pixel_window():
    torch.manual_seed(0)
    disc = PatchDiscriminator().double()
    for k, layer in enumerate(disc.net):                 # without the norms' image-wide statistics
        if isinstance(layer, nn.GroupNorm):
            disc.net[k] = nn.Identity()
    assert window(seen(disc, 3, 3)) == ((1, 26), (1, 26))    # the centre logit: 26x26
    assert window(seen(disc, 0, 0)) == ((0, 14), (0, 14))    # a corner: 15x15, the rest is padding
    assert window(seen(disc, 0, 1)) == ((0, 14), (0, 18))    # the next one over: shifted by 4
