import pytest
import torch

from fmnist_ldm.config import Config, preset
from fmnist_ldm.unet import CONDITIONINGS, UNet, timestep_embedding
from fmnist_ldm.vae import VAE
from fmnist_ldm.weights import build_unet


def test_vae_shapes_and_kl():
    vae = VAE((8, 16, 32), latent_channels=4)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (5, 4, 7, 7)
    assert vae.decode(mean).shape == (5, 1, 28, 28)
    assert VAE.kl(torch.zeros(2, 4, 7, 7), torch.zeros(2, 4, 7, 7)).item() == 0.0
    loss, parts = vae.loss(x, 1e-5)
    assert loss.ndim == 0 and set(parts) == {"rec", "kl"}


def test_timestep_embedding():
    e = timestep_embedding(torch.tensor([0, 10, 999]), 32)
    assert e.shape == (3, 32)
    torch.testing.assert_close(e[0], torch.cat([torch.ones(16), torch.zeros(16)]))
    assert not torch.allclose(e[1], e[2])


def test_unet_latent_and_pixel_shapes():
    for conditioning in CONDITIONINGS:
        net = UNet(4, (16, 32), conditioning=conditioning)
        x = torch.randn(3, 4, 7, 7)
        assert net(x, torch.tensor([0, 500, 999]), torch.tensor([0, 9, 10])).shape == x.shape
    pixel = build_unet(preset("fast", space="pixel", unet_channels=(8, 16, 32), unet_attention=(False, False, True)))
    x = torch.randn(2, 1, 28, 28)
    assert pixel(x, torch.tensor([1, 2]), torch.tensor([3, 10])).shape == x.shape


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_class_changes_the_output(conditioning):
    torch.manual_seed(0)
    net = UNet(4, (16, 32), conditioning=conditioning)
    for p in net.out.parameters():          # the output conv starts at zero; wake it for the test
        torch.nn.init.normal_(p, std=0.1)
    x, t, y = torch.randn(1, 4, 7, 7).repeat(2, 1, 1, 1), torch.tensor([500, 500]), torch.tensor([1, 7])
    out = net(x, t, y)
    assert not torch.allclose(out[0], out[1])
    if conditioning == "both":              # each route alone still carries the class
        for route in (net.class_emb, net.class_time_emb):
            with torch.no_grad():
                saved = route.weight.clone()
                route.weight.zero_()
                alone = net(x, t, y)
                route.weight.copy_(saved)
            assert not torch.allclose(alone[0], alone[1])


def test_config_round_trip():
    cfg = preset("full")
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_decoder_gan_gradients_go_where_they_belong():
    """One backward of DecoderGAN.loss must give the discriminator the gradient of its own hinge
    loss only, and the decoder that of L1 + MSE - w * D(fake), whatever the weight w."""
    import torch.nn.functional as F
    from fmnist_ldm.vae import DecoderGAN, PatchDiscriminator
    torch.manual_seed(0)
    gan = DecoderGAN(VAE((8, 16, 32), latent_channels=4).decoder, PatchDiscriminator(8))
    x, z, w = torch.rand(4, 1, 28, 28) * 2 - 1, torch.randn(4, 4, 7, 7), 10.0
    loss, parts = gan.loss(x, z, w)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in gan.named_parameters()}
    gan.zero_grad()
    fake = gan.decoder(z)
    d_loss = F.relu(1 - gan.disc(x)).mean() + F.relu(1 + gan.disc(fake.detach())).mean()
    d_loss.backward()
    for n, p in gan.disc.named_parameters():
        torch.testing.assert_close(grads["disc." + n], p.grad)
    gan.zero_grad()
    (F.l1_loss(fake, x) + F.mse_loss(fake, x) - w * gan.disc(fake).mean()).backward()
    for n, p in gan.decoder.named_parameters():
        torch.testing.assert_close(grads["decoder." + n], p.grad)
    assert set(parts) == {"rec", "g_adv", "d"}


def test_deepened_decoder_starts_as_the_same_function_and_then_learns():
    """Added residual blocks start as the identity, so a deepened decoder decodes exactly as the
    trained one did; their zeroed last convolution still gets a gradient, so they can learn."""
    from fmnist_ldm.vae import Decoder
    torch.manual_seed(0)
    shallow = Decoder((8, 16, 32), latent_channels=4)
    deep = shallow.deepened(2)
    deeper = deep.deepened(3)
    z = torch.randn(3, 4, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(deep(z), shallow(z))
        torch.testing.assert_close(deeper(z), shallow(z))
    added = [m for m in deeper.net if getattr(m, "added", False)]
    assert len(added) == 2 * 3 and deeper.blocks == 3
    deeper(z).square().mean().backward()
    assert all(m.body[-1].weight.grad.abs().sum() > 0 for m in added)
    with pytest.raises(ValueError, match="cannot be deepened"):
        deeper.deepened(2)
