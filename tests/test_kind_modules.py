"""Encoders, augmentations and decoders of the sequence, image and token modality kinds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from disentangled_ssl._errors import DSSLError
from disentangled_ssl.data.augment import ImageAugment, SequenceAugment, TokenAugment
from disentangled_ssl.nn.conditioned import ConditionedEncoder
from disentangled_ssl.nn.decoders import SequenceDecoder, VectorDecoder
from disentangled_ssl.nn.image import ImageEncoder
from disentangled_ssl.nn.sequence import SequenceEncoder
from disentangled_ssl.nn.tokens import TokenEncoder

SMALL = {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_feedforward": 32}


@pytest.fixture(autouse=True)
def _seed_and_one_thread(one_thread):
    """Seed, and run single-threaded (conftest's ``one_thread``): these modules are tiny."""
    torch.manual_seed(0)


def _masked_batch(lengths: list[int], steps: int, features: int) -> torch.Tensor:
    """(B, steps, features + 1): random features, the mask channel last, padding at the end
    (random values there too)."""
    x = torch.randn(len(lengths), steps, features)
    mask = (torch.arange(steps) < torch.tensor(lengths).unsqueeze(1)).float()
    return torch.cat([x, mask.unsqueeze(-1)], dim=-1)


# ------------------------------------------------------------------------------ encoders
@pytest.mark.parametrize("masked", [False, True])
def test_sequence_encoder_shape_and_dtype(masked):
    enc = SequenceEncoder(5, 7, masked=masked, **SMALL)
    x = torch.randn(3, 9, 5 + masked, dtype=torch.float64)
    if masked:
        x[..., -1] = 1.0
    out = enc(x)
    assert out.shape == (3, 7) and out.dtype == torch.float32


@pytest.mark.parametrize("train", [True, False])
def test_masked_sequence_encoder_ignores_padding(train):
    enc = SequenceEncoder(3, 4, masked=True, **SMALL).train(train)
    x = _masked_batch([10, 6, 0, 1], 10, 3)
    x[3] = x[3].roll(5, dims=0)  # a row whose one valid step sits in the middle
    out = enc(x)
    assert torch.isfinite(out).all()  # the fully padded row 2 included
    changed = x.clone()
    pad = changed[..., -1] == 0
    changed[..., :3][pad] = float("nan")  # padded values never reach the output
    torch.testing.assert_close(enc(changed), out, rtol=0, atol=1e-6)
    longer = torch.cat([x, torch.zeros(4, 5, 4)], dim=1)  # five more padded steps
    torch.testing.assert_close(enc(longer), out, rtol=0, atol=1e-5)
    # A fully padded row gives the same output as zero features.
    empty = enc(_masked_batch([0], 10, 3))
    torch.testing.assert_close(empty[0], out[2], rtol=0, atol=1e-6)


def test_sequence_encoder_errors():
    with pytest.raises(DSSLError, match=r"more than max_len=8 .*max_len >= 9"):
        SequenceEncoder(2, 3, max_len=8, **SMALL)(torch.randn(2, 9, 2))
    with pytest.raises(DSSLError, match=r"d_model=10 must be divisible by n_heads=4"):
        SequenceEncoder(2, 3, d_model=10, n_heads=4)
    with pytest.raises(DSSLError, match=r"shape \(B, T, 2 \+ 1\), the validity mask last"):
        SequenceEncoder(2, 3, masked=True, **SMALL)(torch.randn(2, 5, 2))
    with pytest.raises(DSSLError, match=r"n_layers must be a non-negative integer \(0: no "
                       r"attention layers, the mean of the step embeddings\), got -1"):
        SequenceEncoder(2, 3, n_layers=-1)


def test_sequence_encoder_learns_temporal_order():
    """Rising vs falling sequences of the same values: only the order carries the label."""
    n, steps = 64, 12
    values = torch.rand(n, steps).sort(dim=1).values
    x = torch.cat([values, values.flip(1)]).unsqueeze(-1)  # rising, then the same falling
    x = torch.cat([x, torch.randn(2 * n, steps, 2)], dim=-1)  # two channels of pure noise
    x[n:, :, 1:] = x[:n, :, 1:].flip(1)  # the noise is reversed too: each pair is a reversal
    y = torch.cat([torch.zeros(n), torch.ones(n)]).long()
    # By construction every rising row has a falling twin with the same time average, so any
    # classifier of the time-averaged input is right on exactly half the rows.
    torch.testing.assert_close(x[:n].mean(dim=1), x[n:].mean(dim=1))
    enc = SequenceEncoder(3, 2, **SMALL)
    opt = torch.optim.Adam(enc.parameters(), lr=3e-3)
    for _ in range(80):  # 100% train accuracy after ~50 steps for the seeds tried
        loss = F.cross_entropy(enc(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert (enc(x).argmax(dim=1) == y).float().mean() > 0.9
        # The order is learnt through the positional encoding: without it the encoder is
        # permutation invariant and cannot tell a row from its reversal.
        enc.body.positions.zero_()
        torch.testing.assert_close(enc(x[:n]), enc(x[n:]), rtol=0, atol=1e-5)


def test_token_encoder_shape_and_padding():
    enc = TokenEncoder(50, 6, pad_id=0, **SMALL)
    x = torch.randint(1, 50, (4, 8))
    x[1, 5:] = 0
    x[2] = 0
    out = enc(x)
    assert out.shape == (4, 6) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # Trailing padding changes nothing; neither does another row's length.
    longer = torch.cat([x, torch.zeros(4, 3, dtype=torch.long)], dim=1)
    torch.testing.assert_close(enc(longer), out, rtol=0, atol=1e-5)
    torch.testing.assert_close(enc(x[1:2, :5]), out[1:2], rtol=0, atol=1e-5)
    # ... and the tokens matter: change one real token of row 0.
    other = x.clone()
    other[0, 0] = 1 + other[0, 0] % 49
    assert not torch.allclose(enc(other)[0], out[0])


def test_token_encoder_errors():
    enc = TokenEncoder(5000, 4, **SMALL)
    x = torch.randint(1, 5000, (4, 6))
    x[2, 3] = 5003
    with pytest.raises(DSSLError, match=r"^token id 5003 at row 2 is outside the vocabulary of "
                                        r"5000 ids \(0\.\.4999\); "):
        enc(x)
    x[2, 3] = -1
    with pytest.raises(DSSLError, match=r"token id -1 at row 2"):
        enc(x)
    with pytest.raises(DSSLError, match=r"integer token ids \(int64\), got dtype torch.float32"):
        enc(torch.ones(2, 3))
    with pytest.raises(DSSLError, match=r"600 tokens, more than max_len=512"):
        enc(torch.ones(1, 600, dtype=torch.long))
    with pytest.raises(DSSLError, match=r"pad_id must be an id in 0\.\.9"):
        TokenEncoder(10, 4, pad_id=10)


@pytest.mark.parametrize(("channels", "size", "pool"),
                         [(3, 32, 1), (1, 28, 1), (3, 8, 1), (3, 32, 2), (3, 4, 2), (1, 28, 4)])
def test_image_encoder_shapes(channels, size, pool):
    enc = ImageEncoder(channels, 5, width=8, pool=pool)
    out = enc(torch.rand(2, channels, size, size + 3))
    assert out.shape == (2, 5) and out.dtype == torch.float32
    assert enc.feature_dim == 32 * pool * pool == enc.out.in_features


def test_image_encoder_rows_are_independent_of_the_batch():
    """GroupNorm, not BatchNorm: an image's code does not depend on its batch, even in
    training mode (contrastive negatives cannot leak through batch statistics)."""
    enc = ImageEncoder(3, 4, width=8).train()
    x = torch.rand(4, 3, 16, 16)
    torch.testing.assert_close(enc(x)[:1], enc(x[:1]), rtol=0, atol=1e-5)


def test_image_encoder_errors():
    enc = ImageEncoder(3, 4, width=8)
    with pytest.raises(DSSLError, match=r"at least 4x4 pixels, got 3x16"):
        enc(torch.rand(1, 3, 3, 16))
    assert enc(torch.rand(2, 3, 8, 4)).shape == (2, 4)  # digit halves: 8 x 4 pixels
    with pytest.raises(DSSLError, match=r"shape \(B, 3, H, W\), got \(2, 1, 16, 16\)"):
        enc(torch.rand(2, 1, 16, 16))
    with pytest.raises(DSSLError, match=r"width must be a positive integer"):
        ImageEncoder(3, 4, width=0)


def test_conditioned_encoder():
    backbone = SequenceEncoder(2, 12, **SMALL)
    enc = ConditionedEncoder(backbone, 12, 3, 5, hidden_dim=16)
    x, cond = torch.randn(4, 6, 2), torch.randn(4, 3)
    out = enc(x, cond)
    assert out.shape == (4, 5)
    assert not torch.allclose(enc(x, cond + 1.0), out)  # the condition is read
    out.sum().backward()
    assert backbone.out.weight.grad is not None  # and the backbone is trained through it
    with pytest.raises(DSSLError, match=r"backbone returned shape \(4, 12\), expected "
                                        r"\(B, feature_dim=10\)"):
        ConditionedEncoder(backbone, 10, 3, 5)(x, cond)
    with pytest.raises(DSSLError, match=r"condition has shape \(4, 2\), expected \(4, "
                                        r"condition_dim=3\)"):
        enc(x, cond[:, :2])


# ------------------------------------------------------------------------------ decoders
def test_vector_decoder():
    dec = VectorDecoder(4, 6, hidden_dim=8)
    z, target = torch.randn(5, 4), torch.randn(5, 6)
    out = dec(z)
    assert out.shape == (5, 6)
    err = dec.reconstruction_error(target, out)
    assert err.shape == (5,)
    torch.testing.assert_close(err.mean(), F.mse_loss(out, target))


def test_sequence_decoder_masked_error_uses_valid_steps_only():
    dec = SequenceDecoder(4, 7, 3, masked=True, **SMALL)
    out = dec(torch.randn(3, 4))
    assert out.shape == (3, 7, 3)
    target = _masked_batch([7, 2, 0], 7, 3)
    err = dec.reconstruction_error(target, out)
    expected = torch.stack([(out[0] - target[0, :, :3]).pow(2).mean(),
                            (out[1, :2] - target[1, :2, :3]).pow(2).mean(),
                            torch.tensor(0.0)])
    torch.testing.assert_close(err, expected)
    changed = target.clone()
    changed[..., :3][changed[..., -1] == 0] = float("nan")
    out.retain_grad()
    err2 = dec.reconstruction_error(changed, out)
    torch.testing.assert_close(err2, err)
    err2.sum().backward()
    assert torch.isfinite(out.grad).all()
    assert (out.grad[1, 2:] == 0).all()  # padded steps get no gradient


def test_sequence_decoder_unmasked_error_is_mse():
    dec = SequenceDecoder(4, 5, 2, **SMALL)
    out, target = dec(torch.randn(3, 4)), torch.randn(3, 5, 2)
    torch.testing.assert_close(dec.reconstruction_error(target, out).mean(),
                               F.mse_loss(out, target))
    with pytest.raises(DSSLError, match=r"target has shape \(3, 5, 3\), expected \(B, 5, 2\)"):
        dec.reconstruction_error(torch.randn(3, 5, 3), out)


# ------------------------------------------------------------------------- sequence aug
def _numbered(batch: int, steps: int, lengths: list[int] | None = None) -> torch.Tensor:
    """(B, T, 3 [+1]): channel 0 numbers the steps (1..T), channel 1 is in [1, 2) (never
    zero), channel 2 random; with ``lengths`` the mask channel is appended."""
    x = torch.stack([torch.arange(1, steps + 1).float().expand(batch, steps),
                     1.0 + torch.rand(batch, steps), torch.randn(batch, steps)], dim=-1)
    if lengths is None:
        return x
    mask = (torch.arange(steps) < torch.tensor(lengths).unsqueeze(1)).float()
    return torch.cat([x, mask.unsqueeze(-1)], dim=-1)


def test_sequence_permutation_keeps_valid_steps_and_padding():
    lengths = [10, 7, 0, 1, 4] * 4
    x = _numbered(len(lengths), 10, lengths)
    x[1, :, -1] = x[1, :, -1].roll(2)  # row 1: padding at steps 0, 1 and 9
    aug = SequenceAugment(masked=True)
    out = aug.apply(x, torch.zeros(len(lengths), dtype=torch.long))
    valid = x[..., -1] == 1
    torch.testing.assert_close(out[..., -1], x[..., -1], rtol=0, atol=0)  # the mask
    torch.testing.assert_close(out[~valid], x[~valid], rtol=0, atol=0)  # padded steps
    # Every output step is a whole input step of its row (channel 0 names it), valid ones
    # only; each valid step appears once.
    index = out[..., 0].long() - 1
    torch.testing.assert_close(out, x.gather(1, index.unsqueeze(-1).expand_as(x)), rtol=0,
                               atol=0)
    for b in range(len(lengths)):
        assert sorted(index[b][valid[b]].tolist()) == sorted(
            torch.nonzero(valid[b]).squeeze(1).tolist())
    assert (out[0, :, 0] != x[0, :, 0]).any()  # full rows do get shuffled


def test_sequence_zeroing_zeroes_round_fraction_of_valid_steps():
    lengths = [10, 7, 3, 0, 1, 8]
    x = _numbered(len(lengths), 10, lengths)
    aug = SequenceAugment(drop_fraction=0.2, masked=True)
    out = aug.apply(x, torch.full((len(lengths),), 2))
    zeroed = (out[..., :3] == 0).all(dim=-1)
    assert zeroed.sum(dim=1).tolist() == [round(0.2 * n) for n in lengths]  # 2, 1, 1, 0, 0, 2
    assert not (zeroed & (x[..., -1] == 0)).any()  # only valid steps
    torch.testing.assert_close(out[~zeroed], x[~zeroed], rtol=0, atol=0)  # the rest, and mask


def test_sequence_noise_spares_mask_and_padding():
    lengths = [50, 20, 0] * 20
    x = _numbered(len(lengths), 50, lengths)
    out = SequenceAugment(noise_std=0.1, masked=True).apply(x, torch.ones(len(lengths)).long())
    valid = x[..., -1] == 1
    torch.testing.assert_close(out[..., -1], x[..., -1], rtol=0, atol=0)
    torch.testing.assert_close(out[~valid], x[~valid], rtol=0, atol=0)
    diff = (out - x)[..., :3][valid]
    assert (diff != 0).all() and abs(diff.std().item() - 0.1) < 0.005


def _sequence_op(x: torch.Tensor, out: torch.Tensor) -> list[int]:
    """Which of (permute, noise, zero, identity) turned each row of ``x`` (from
    :func:`_numbered`, unmasked) into ``out``."""
    ops = []
    for a, b in zip(x, out):
        if torch.equal(a, b):
            ops.append(3)
        elif ((b == 0).all(dim=-1) | (a == b).all(dim=-1)).all():
            ops.append(2)
        elif torch.equal(a[:, 0].sort().values, b[:, 0].sort().values) and torch.equal(
                a[b[:, 0].long() - 1], b):
            ops.append(0)
        else:
            assert ((a - b).abs() < 1).all() and (a != b).all()
            ops.append(1)
    return ops


def test_sequence_augment_draws_an_operation_per_row():
    x = _numbered(1, 10).expand(400, 10, 3).contiguous()  # the same row 400 times
    ops = torch.tensor(_sequence_op(x, SequenceAugment()(x)))
    counts = torch.bincount(ops, minlength=4) / 400
    assert ((counts - 0.25).abs() < 0.07).all(), counts  # rows draw independently
    torch.manual_seed(1)
    first = SequenceAugment()(x)
    torch.manual_seed(1)
    torch.testing.assert_close(SequenceAugment()(x), first)  # torch's global RNG


def test_sequence_augment_pair_gives_distinct_operations():
    x = _numbered(1, 10).expand(200, 10, 3).contiguous()
    v1, v2 = SequenceAugment().pair(x)
    ops1, ops2 = _sequence_op(x, v1), _sequence_op(x, v2)
    assert all(a != b for a, b in zip(ops1, ops2))
    assert len(set(zip(ops1, ops2))) == 12


def test_sequence_augment_two_ops_per_view_never_identity():
    x = _numbered(1, 10).expand(200, 10, 3).contiguous()
    out = SequenceAugment(ops_per_view=2)(x)
    assert not (out == x).all(dim=2).all(dim=1).any()


# ---------------------------------------------------------------------------- image aug
def test_image_augment_shape_range_and_rows_differ():
    x = torch.rand(1, 3, 32, 32).expand(16, 3, 32, 32).contiguous()
    out = ImageAugment()(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    flat = out.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(16)).min() > 1e-3  # all 16 views differ
    gray = ImageAugment()(torch.rand(4, 1, 28, 28))  # no saturation for one channel
    assert gray.shape == (4, 1, 28, 28)


def test_image_augment_flip_only_gives_image_or_mirror():
    x = torch.rand(64, 3, 12, 12)
    aug = ImageAugment(crop_scale=(1.0, 1.0), flip_p=0.5, brightness=0, contrast=0,
                       saturation=0)
    out = aug(x)
    same = (out - x).abs().flatten(1).amax(dim=1) < 1e-5
    mirror = (out - x.flip(-1)).abs().flatten(1).amax(dim=1) < 1e-5
    assert (same ^ mirror).all()
    assert 16 < mirror.sum() < 48


def test_image_augment_crop_area_and_aspect():
    """On an image whose channels are the x and y coordinates, a crop's value spans are its
    width and height fractions: their product is the area fraction."""
    size = 24
    ramp = torch.linspace(0, 1, size)
    x = torch.stack([ramp.expand(size, size), ramp.unsqueeze(1).expand(size, size)])
    x = x.expand(200, 2, size, size)
    aug = ImageAugment(crop_scale=(0.25, 0.25), flip_p=0, brightness=0, contrast=0,
                       saturation=0)
    out = aug(x)
    # Adjacent output pixels sample the ramp w_f · 2/W apart (normalised units), where it
    # rises by 1/(size - 1) per input pixel: their difference is w_f / (size - 1). The middle
    # pixels always lie inside the image (no border clamping).
    mid = size // 2
    width = (out[:, 0, :, mid] - out[:, 0, :, mid - 1]).mean(dim=1) * (size - 1)
    height = (out[:, 1, mid, :] - out[:, 1, mid - 1, :]).mean(dim=1) * (size - 1)
    torch.testing.assert_close(width * height, torch.full((200,), 0.25), rtol=0, atol=1e-4)
    ratio = width / height
    assert (ratio > 0.75 - 1e-4).all() and (ratio < 4 / 3 + 1e-4).all()
    assert ratio.std() > 0.05  # aspect ratios vary
    centre = out[:, 0, mid, mid]
    assert centre.min() < 0.35 and centre.max() > 0.65  # and so do the positions


def test_image_augment_brightness_is_one_factor_per_image():
    x = 0.2 + 0.5 * torch.rand(50, 3, 8, 8)  # x · 1.4 stays below 1: no clipping
    aug = ImageAugment(crop_scale=(1, 1), flip_p=0, brightness=0.4, contrast=0, saturation=0)
    factor = aug(x) / x
    per_image = factor.flatten(1)
    torch.testing.assert_close(per_image, per_image[:, :1].expand_as(per_image))
    assert per_image.min() >= 0.6 - 1e-5 and per_image.max() <= 1.4 + 1e-5
    assert per_image[:, 0].std() > 0.1


# ---------------------------------------------------------------------------- token aug
def test_token_augment_branches():
    batch, length, mask_id = 600, 24, 99
    lengths = torch.randint(0, length + 1, (batch,))
    lengths[:50] = length
    ids = torch.argsort(torch.rand(batch, length), dim=1) + 1  # distinct ids 1..24 per row
    x = ids.masked_fill(torch.arange(length) >= lengths.unsqueeze(1), 0)
    out = TokenAugment(pad_id=0, mask_fraction=0.15, drop_fraction=0.1, mask_id=mask_id)(x)
    branch = []
    for row, new, n in zip(x.tolist(), out.tolist(), lengths.tolist()):
        if mask_id in new:
            branch.append(0)
            changed = [i for i in range(length) if row[i] != new[i]]
            assert len(changed) == round(0.15 * n) and all(new[i] == mask_id for i in changed)
        elif new != row:
            branch.append(1)
            kept = [t for t in new if t != 0]
            assert new[:len(kept)] == kept  # compacted to the left, pads at the end
            assert len(kept) == n - round(0.1 * n)  # the pad count grew by the dropped count
            positions = [row.index(t) for t in kept]
            assert positions == sorted(positions)  # the kept tokens keep their order
        else:
            branch.append(2)
    counts = torch.bincount(torch.tensor(branch), minlength=3).float()
    # Rows too short to change (round(f · n) == 0) look like identity.
    full = torch.bincount(torch.tensor(branch[:50]), minlength=3)
    assert (full > 5).all()
    assert counts[0] > 120 and counts[1] > 120


def test_token_augment_keeps_pad_only_rows_and_draws_per_row():
    x = torch.zeros(3, 6, dtype=torch.long)
    torch.testing.assert_close(TokenAugment()(x), x)
    row = torch.arange(1, 21).expand(200, 20)
    out = TokenAugment(mask_fraction=0.5, drop_fraction=0.5)(row)
    assert len({tuple(r) for r in out.tolist()}) > 100


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(("make", "message"), [
    (lambda: SequenceAugment(noise_std=-1), r"noise_std must be >= 0 and finite, got -1"),
    (lambda: SequenceAugment(drop_fraction=1.0), r"drop_fraction must be a number in \[0, 1\)"),
    (lambda: SequenceAugment(ops_per_view=3), r"ops_per_view must be 1 or 2, got 3"),
    (lambda: ImageAugment(crop_scale=(0.0, 1.0)), r"crop_scale must satisfy 0 < min <= max"),
    (lambda: ImageAugment(crop_scale=0.5), r"crop_scale must be a pair"),
    (lambda: ImageAugment(brightness=1.5), r"brightness must be a number in \[0, 1\]"),
    (lambda: ImageAugment(flip_p=-0.1), r"flip_p must be a number in \[0, 1\]"),
    (lambda: TokenAugment(mask_fraction=-0.1), r"mask_fraction must be a number in \[0, 1\)"),
    (lambda: TokenAugment(pad_id=-1), r"pad_id must be a non-negative integer id"),
])
def test_augment_arguments_are_validated(make, message):
    with pytest.raises(DSSLError, match=message):
        make()


def test_augment_inputs_are_validated():
    with pytest.raises(DSSLError, match=r"\(B, T, d \+ 1\) with the mask channel last"):
        SequenceAugment(masked=True)(torch.randn(2, 5))
    with pytest.raises(DSSLError, match=r"floating-point batch \(B, C, H, W\)"):
        ImageAugment()(torch.rand(2, 8, 8))
    with pytest.raises(DSSLError, match=r"integer tensor of token ids, got torch.float32"):
        TokenAugment()(torch.ones(2, 4))


def test_zero_layers_is_a_bag_of_tokens_that_ignores_order_and_padding():
    """``n_layers=0``: no attention and no positions, the mean of the token embeddings."""

    torch.manual_seed(0)
    enc = TokenEncoder(20, 5, d_model=8, n_layers=0).eval()
    assert not any(k.startswith("body.encoder") for k in enc.state_dict())
    ids = torch.tensor([[3, 7, 9, 0, 0], [9, 3, 7, 0, 0], [7, 9, 3, 0, 0], [3, 7, 0, 0, 0]])
    with torch.no_grad():
        out = enc(ids)
        longer = enc(torch.cat([ids, torch.zeros(4, 3, dtype=torch.long)], dim=1))
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=1e-6)  # the same bag, reordered
    torch.testing.assert_close(out[0], out[2], rtol=0, atol=1e-6)
    torch.testing.assert_close(out, longer, rtol=0, atol=1e-6)  # trailing padding ignored
    assert (out[0] - out[3]).abs().max() > 1e-3  # another bag, another code
    with_attention = TokenEncoder(20, 5, d_model=8, n_layers=1).eval()
    with torch.no_grad():
        ordered = with_attention(ids)
    assert (ordered[0] - ordered[1]).abs().max() > 1e-4  # positions make order count


def test_a_bag_of_words_barely_moves_for_a_word_it_never_saw():
    """``n_layers=0`` embeddings start at N(0, 0.02²): a word that never occurs in training
    keeps its small initial vector, so adding it to a caption leaves the code almost as it
    was; PyTorch's N(0, 1) start (put back on that one row) moves it by far more. With
    attention the default start is kept."""
    torch.manual_seed(0)
    enc = TokenEncoder(12, 4, d_model=16, n_layers=0)
    assert float(enc.embedding.weight[1:].detach().std()) == pytest.approx(0.02, rel=0.2)
    assert not enc.embedding.weight[0].any()  # the padding row
    attention = TokenEncoder(12, 4, d_model=16, n_layers=1)
    assert float(attention.embedding.weight[1:].detach().std()) > 0.5
    ids = torch.randint(1, 10, (256, 4))  # ids 10 and 11 never occur
    target = F.one_hot(ids, 12).sum(1).float()[:, 1:5]  # a code that counts words 1..4
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        F.mse_loss(enc(ids), target).backward()
        opt.step()
    with_unseen = torch.cat([ids[:64], torch.full((64, 1), 10)], dim=1)
    with torch.no_grad():
        before, after = enc(ids[:64]), enc(with_unseen)
        moved = ((after - before).norm(dim=1) / before.norm(dim=1)).mean()
        enc.embedding.weight[10].normal_()  # the N(0, 1) start on that row
        moved_default = ((enc(with_unseen) - before).norm(dim=1) / before.norm(dim=1)).mean()
    assert moved_default > 5 * moved, (moved, moved_default)  # measured: 0.46 against 5.3
