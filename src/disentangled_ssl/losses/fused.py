"""Contrastive loss terms as single autograd nodes with analytic backwards.

:func:`info_nce` is the symmetric InfoNCE of
:func:`disentangled_ssl.losses.functional.info_nce` (every method's contrastive term) in one
node: both cross-entropies come from one exponential of the logits whenever the logits are
bounded (always for unit vectors: ``|logit| ≤ 1/τ``), and the backward is two matrix products.

:class:`~disentangled_ssl.losses.SpecificLoss` and the batched λ-grid
(:mod:`disentangled_ssl.training.ensemble`) compute, per modality, the self-contrastive InfoNCE
between the joint codes ``normalise([s, o])`` of two views and the orthogonality penalty
``‖normalise(s)ᵀ normalise(c)‖_F`` of each view. Written with autograd, that is about a hundred
small kernels per step (two normalisations of concatenations, a cross-entropy each way, two
row-normalised cross-correlations, and their backward graph); here it is about thirty, with
smaller matrix products, in one node:

- the logits are ``(s_a s_bᵀ + o_a o_bᵀ) / (r_a r_bᵀ τ)`` with ``r = ‖[s, o]‖``, so the gradient
  needs products with the specific codes only (D_s columns, not D_s + D_c), and the product of
  the frozen codes is shared by every member of an ensemble;
- both cross-entropies come from ONE exponential of the logits: the joint codes are unit
  vectors, so every logit lies in ``[-1/τ, 1/τ]`` and ``exp(logit - 1/τ)`` can neither overflow
  nor (for ``τ ≥ 0.025``) underflow; smaller temperatures use two log-sum-exps instead.

Values and gradients equal the autograd composition of
:func:`~disentangled_ssl.losses.functional.info_nce` and
:func:`~disentangled_ssl.losses.functional.orthogonality` to float rounding (float64: 1e-15
relative; ``tests/test_losses.py``), including ``F.normalize``'s clamp of tiny norms at ``eps``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_EPS = 1e-12  # F.normalize's default lower bound on a norm
_MAX_EXP_RANGE = 80.0  # exp(-80) ≈ 1.8e-35 is a normal float32; shift by 1/τ only if 2/τ ≤ 80


def _log_sum_exps(logits: Tensor, shift: Tensor | float | None
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Log-sum-exp of (..., B, B) logits over each row and over each column, and the sum of
    the row-wise and column-wise softmaxes (what the InfoNCE backward needs).

    ``shift`` (a float, or one value per leading index) bounds every |logit| and is at most
    40: then ``exp(logits - shift)`` neither overflows nor underflows in float32 and ONE
    exponential serves both directions. None computes the two log-sum-exps separately.
    """
    if shift is None:
        lse_row, lse_col = logits.logsumexp(-1), logits.logsumexp(-2)
        probs = (logits - lse_row.unsqueeze(-1)).exp_()
        return lse_row, lse_col, probs.add_((logits - lse_col.unsqueeze(-2)).exp_())
    # per leading index: (...,) -> (..., 1) against the row/column sums, (..., 1, 1) here
    per_sum = shift.unsqueeze(-1) if isinstance(shift, Tensor) else shift
    per_logit = per_sum.unsqueeze(-1) if isinstance(per_sum, Tensor) else per_sum
    shifted = (logits - per_logit).exp_()
    row, col = shifted.sum(-1), shifted.sum(-2)
    probs = shifted.mul_(row.reciprocal().unsqueeze(-1) + col.reciprocal().unsqueeze(-2))
    return row.log_().add_(per_sum), col.log_().add_(per_sum), probs


def _dot_grad(probs: Tensor, grad: Tensor, temperature: float) -> Tensor:
    """Gradient of the symmetric InfoNCE w.r.t. the (..., B, B) dot products (logits · τ):
    ``grad · (softmax_rows + softmax_cols - 2 I) / (2 B τ)``, from ``probs`` (the softmax sum
    of :func:`_log_sum_exps`) and the upstream gradient ``grad`` of shape (...)."""
    scale = (grad / (2.0 * probs.shape[-1] * temperature)).unsqueeze(-1).unsqueeze(-1)
    h = probs * scale
    h.diagonal(0, -2, -1).sub_(2.0 * scale.squeeze(-1))
    return h


def _norm_scale(norm: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """``(max(norm, eps), norm >= eps)``: the divisor of F.normalize and where its gradient
    goes through the norm (else the divisor is the constant eps)."""
    return norm.clamp_min(eps), norm >= eps


def _unless_clamped(on_norm: Tensor, through_norm: Tensor, grad: Tensor, eps: float) -> Tensor:
    """``through_norm`` in rows whose norm is >= eps, else ``grad / eps`` (the gradient of
    ``x / eps``). On CPU the common all-rows case skips the select; elsewhere no host sync."""
    if on_norm.device.type == "cpu" and bool(on_norm.all()):
        return through_norm
    return torch.where(on_norm.unsqueeze(-1), through_norm, grad / eps)


def _normalised_grad(grad: Tensor, unit: Tensor, norm: Tensor, on_norm: Tensor, eps: float
                     ) -> Tensor:
    """Gradient w.r.t. x of ``unit = x / max(‖x‖, eps)`` given the gradient w.r.t. ``unit``."""
    radial = (unit * grad).sum(-1, keepdim=True)
    return _unless_clamped(on_norm, (grad - unit * radial) / norm.unsqueeze(-1), grad, eps)


class _SpecificTerms(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec_a: Tensor, spec_b: Tensor, own_a: Tensor, own_b: Tensor,  # type: ignore[override]
                other_a: Tensor, other_b: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
        eps = _EPS
        inv_t = 1.0 / temperature
        # --- InfoNCE between the joint codes [s, o] / ‖[s, o]‖ of the two views.
        ra, ra_on = _norm_scale(
            (spec_a.square().sum(-1) + other_a.square().sum(-1)).sqrt(), eps)
        rb, rb_on = _norm_scale(
            (spec_b.square().sum(-1) + other_b.square().sum(-1)).sqrt(), eps)
        dot = torch.matmul(spec_a, spec_b.transpose(-2, -1))
        dot = dot + torch.matmul(other_a, other_b.transpose(-2, -1))
        logits = dot.div_(ra.unsqueeze(-1) * rb.unsqueeze(-2) * temperature)
        # |logit| <= 1/τ: the joint codes are unit vectors.
        lse_row, lse_col, probs = _log_sum_exps(
            logits, inv_t if 2.0 * inv_t <= _MAX_EXP_RANGE else None)
        nce = 0.5 * (lse_row.mean(-1) + lse_col.mean(-1)) - logits.diagonal(0, -2, -1).mean(-1)
        # --- Orthogonality: ‖normalise(s)ᵀ normalise(c)‖_F per view.
        na, na_on = _norm_scale(torch.linalg.vector_norm(spec_a, dim=-1), eps)
        nb, nb_on = _norm_scale(torch.linalg.vector_norm(spec_b, dim=-1), eps)
        unit_a, unit_b = spec_a / na.unsqueeze(-1), spec_b / nb.unsqueeze(-1)
        own_a = own_a / torch.linalg.vector_norm(own_a, dim=-1, keepdim=True).clamp_min(eps)
        own_b = own_b / torch.linalg.vector_norm(own_b, dim=-1, keepdim=True).clamp_min(eps)
        cross_a = torch.matmul(unit_a.transpose(-2, -1), own_a)
        cross_b = torch.matmul(unit_b.transpose(-2, -1), own_b)
        fro_a, fro_b = torch.linalg.matrix_norm(cross_a), torch.linalg.matrix_norm(cross_b)
        ortho = 0.5 * (fro_a + fro_b)
        ctx.save_for_backward(spec_a, spec_b, ra, rb, ra_on, rb_on, logits, probs,
                              unit_a, unit_b, na, nb, na_on, nb_on, own_a, own_b,
                              cross_a, cross_b, fro_a, fro_b)
        ctx.temperature = temperature
        return nce, ortho

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_nce: Tensor, g_ortho: Tensor):  # type: ignore[override]
        (spec_a, spec_b, ra, rb, ra_on, rb_on, logits, probs, unit_a, unit_b, na, nb,
         na_on, nb_on, own_a, own_b, cross_a, cross_b, fro_a, fro_b) = ctx.saved_tensors
        eps, temperature = _EPS, ctx.temperature
        h = _dot_grad(probs, g_nce, temperature)  # logits = <ja, jb> / τ
        hl = h * logits
        # <ja_i, d ja_i> = Σ_k H_ik <ja_i, jb_k> = τ Σ_k H_ik L_ik (and likewise for jb).
        radial_a = hl.sum(-1).mul_(temperature).unsqueeze(-1)
        radial_b = hl.sum(-2).mul_(temperature).unsqueeze(-1)
        joint_a, joint_b = spec_a / ra.unsqueeze(-1), spec_b / rb.unsqueeze(-1)
        d_joint_a = torch.matmul(h, joint_b)  # the specific columns of d ja
        d_joint_b = torch.matmul(h.transpose(-2, -1), joint_a)
        grads = []
        for d_joint, joint, radial, r, r_on, unit, n, n_on, own, cross, fro in (
            (d_joint_a, joint_a, radial_a, ra, ra_on, unit_a, na, na_on, own_a, cross_a, fro_a),
            (d_joint_b, joint_b, radial_b, rb, rb_on, unit_b, nb, nb_on, own_b, cross_b, fro_b),
        ):
            grad = _unless_clamped(r_on, (d_joint - joint * radial) / r.unsqueeze(-1),
                                   d_joint, eps)
            # d ‖X‖_F / dX = X / ‖X‖_F (0 where X = 0, as torch.linalg.matrix_norm).
            coef = torch.where(fro > 0, 0.5 * g_ortho / fro.clamp_min(torch.finfo(fro.dtype).tiny),
                               torch.zeros_like(fro))
            d_unit = torch.matmul(own, cross.transpose(-2, -1)) * coef.unsqueeze(-1).unsqueeze(-1)
            grad = grad + _normalised_grad(d_unit, unit, n, n_on, eps)
            grads.append(grad)
        return grads[0], grads[1], None, None, None, None, None


class _InfoNCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, temperature: float,  # type: ignore[override]
                shift: Tensor | None) -> Tensor:
        logits = torch.matmul(a, b.transpose(-2, -1)).div_(temperature)
        lse_row, lse_col, probs = _log_sum_exps(logits, shift)
        ctx.save_for_backward(a, b, probs)
        ctx.temperature = temperature
        return 0.5 * (lse_row.mean(-1) + lse_col.mean(-1)) - logits.diagonal(0, -2, -1).mean(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        a, b, probs = ctx.saved_tensors
        h = _dot_grad(probs, grad, ctx.temperature)  # logits = a bᵀ / τ
        grad_a = torch.matmul(h, b) if ctx.needs_input_grad[0] else None
        grad_b = torch.matmul(h.transpose(-2, -1), a) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b, None, None


_HALF = (torch.float16, torch.bfloat16)


def _needs_float32(device_type: str, *tensors: Tensor) -> bool:
    """The analytic kernels assume float32/float64 ranges (exp shifts up to e^±80): under
    autocast or on half-precision inputs they run in float32."""
    return torch.is_autocast_enabled(device_type) or any(t.dtype in _HALF for t in tensors)


def info_nce(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE per leading index: (..., B, D), (..., B, D) -> (...).

    The value of :func:`disentangled_ssl.losses.functional.info_nce` (its single-process
    branch) for each leading index, as one autograd node. On CPU the two log-sum-exps share
    one exponential when ``max‖a‖ · max‖b‖ / τ <= 40`` (unit vectors and τ >= 0.025); otherwise,
    and on accelerators (no host sync), they are computed separately.
    """
    device_type = a.device.type
    if _needs_float32(device_type, a, b):
        with torch.autocast(device_type, enabled=False):
            return info_nce(a.float(), b.float(), temperature)
    shift = None
    if device_type == "cpu":
        with torch.no_grad():
            bound = (torch.linalg.vector_norm(a, dim=-1).amax(-1)
                     * torch.linalg.vector_norm(b, dim=-1).amax(-1)) / temperature
        if bool((bound <= 0.5 * _MAX_EXP_RANGE).all()):
            shift = bound
    return _InfoNCE.apply(a, b, float(temperature), shift)


def specific_terms(spec_a: Tensor, spec_b: Tensor, own_a: Tensor, own_b: Tensor,
                   other_a: Tensor, other_b: Tensor, temperature: float
                   ) -> tuple[Tensor, Tensor]:
    """Step 2's two loss terms for one modality (or a stack of them), fused.

    Args:
        spec_a, spec_b: (..., B, Ds) specific codes of the two views (the trained ones).
        own_a, own_b: (..., B, Dc) the modality's own frozen shared codes of the two views.
        other_a, other_b: (..., B, Dc) the other modality's frozen shared codes.
        temperature: InfoNCE temperature.

    Leading dimensions broadcast (e.g. ensemble members (K, B, Ds) against shared codes
    (1, B, Dc)). Gradients flow to ``spec_a`` and ``spec_b`` only: the shared codes must not
    require gradients (use the autograd composition otherwise).

    Returns:
        ``(infonce, orthogonality)`` of shape ``(...)``: ``info_nce(normalise([s_a, o_a]),
        normalise([s_b, o_b]), τ)`` and ``(‖ŝ_aᵀ ĉ_a‖_F + ‖ŝ_bᵀ ĉ_b‖_F) / 2``.
    """
    device_type = spec_a.device.type
    if _needs_float32(device_type, spec_a, spec_b, own_a, own_b, other_a, other_b):
        # Mixed or half precision: the loss runs in float32 (small products, softmax-heavy).
        with torch.autocast(device_type, enabled=False):
            tensors = [t.float() for t in (spec_a, spec_b, own_a, own_b, other_a, other_b)]
            return _SpecificTerms.apply(*tensors, float(temperature))
    return _SpecificTerms.apply(spec_a, spec_b, own_a, own_b, other_a, other_b,
                                float(temperature))


def other_codes(shared: Sequence[tuple[Tensor, Tensor]]) -> list[tuple[Tensor, Tensor]]:
    """Per modality i, the (view a, view b) shared codes of "the other modality": modality
    1 - i for two modalities, the mean of the others' codes for more."""
    n_mod = len(shared)
    if n_mod == 2:
        return [shared[1], shared[0]]
    return [(torch.stack([shared[j][0] for j in range(n_mod) if j != i]).mean(0),
             torch.stack([shared[j][1] for j in range(n_mod) if j != i]).mean(0))
            for i in range(n_mod)]


def specific_terms_summed(specific: Sequence[tuple[Tensor, Tensor]],
                          shared: Sequence[tuple[Tensor, Tensor]], temperature: float
                          ) -> tuple[Tensor, Tensor]:
    """:func:`specific_terms` of every modality, summed over modalities.

    Args:
        specific: per modality, the (view a, view b) specific codes, (..., B, Ds) each (a
            leading member dimension for ensembles).
        shared: per modality, the (view a, view b) frozen shared codes, (B, Dc) or with the
            same leading dimensions.
        temperature: InfoNCE temperature.

    Same-shaped modalities go through one call, stacked on a new leading dimension.
    """
    other = other_codes(shared)
    n_mod = len(specific)
    codes = [c for group in (shared, other) for pair in group for c in pair]
    if all(s.shape == specific[0][0].shape for pair in specific for s in pair) and all(
            c.shape == codes[0].shape for c in codes):
        lead = specific[0][0].dim() - codes[0].dim()  # member dims the codes broadcast over

        def stacked(group: Sequence[tuple[Tensor, Tensor]], v: int, extra: int) -> Tensor:
            out = torch.stack([group[i][v] for i in range(n_mod)])
            return out.reshape(out.shape[:1] + (1,) * extra + out.shape[1:])

        nce, ortho = specific_terms(
            stacked(specific, 0, 0), stacked(specific, 1, 0), stacked(shared, 0, lead),
            stacked(shared, 1, lead), stacked(other, 0, lead), stacked(other, 1, lead),
            temperature)
        return nce.sum(0), ortho.sum(0)
    terms = [specific_terms(specific[i][0], specific[i][1], shared[i][0], shared[i][1],
                            other[i][0], other[i][1], temperature) for i in range(n_mod)]
    return (torch.stack([t[0] for t in terms]).sum(0),
            torch.stack([t[1] for t in terms]).sum(0))
