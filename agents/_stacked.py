"""Every seed's parameters in one aligned ``(B, P)`` buffer, shared by the seed-batched agents
(:mod:`agents.dqn_batched`, :mod:`agents.ppo_batched`), and per-seed gradient clipping on it."""

from __future__ import annotations

import math
from typing import Sequence

import torch


class Stacked:
    """Every seed's parameter tensors (e.g. ``[W1, b1, W2, b2, W3, b3]``) in one ``(B, P)`` buffer ``flat``.

    Seed ``b`` owns row ``b``; each tensor starts at an offset aligned to :data:`ALIGN` floats and ``P``
    is a multiple of it. One optimizer tensor then covers all seeds, and every element sits at
    the same SIMD lane whatever ``B`` is, so even a vectorised kernel with a scalar tail (fused
    Adam) computes each seed's update exactly as it would in a batch of one.
    """

    ALIGN = 64

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        B = tensors[0].shape[0]
        self.shapes = [tuple(t.shape[1:]) for t in tensors]
        self.slices, off = [], 0
        for shape in self.shapes:
            n = math.prod(shape)
            self.slices.append((off, n))
            off += -(-n // self.ALIGN) * self.ALIGN
        self.flat = torch.zeros((B, off), dtype=tensors[0].dtype, device=tensors[0].device)
        for t, (o, n) in zip(tensors, self.slices):
            self.flat[:, o:o + n] = t.reshape(B, n)

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        B = flat.shape[0]
        return [flat[:, o:o + n].view((B,) + s) for (o, n), s in zip(self.slices, self.shapes)]

    def tensors(self) -> list[torch.Tensor]:
        """Views ``(B, *shape)`` into ``flat``; after :meth:`make_trainable`, leaf tensors that share
        ``flat``'s memory and whose gradients accumulate in place into ``flat.grad``."""
        leaves = getattr(self, "_leaves", None)
        if leaves is not None:
            return leaves
        views = self.__dict__.get("_flat_views")
        if views is None or views[0] is not self.flat:  # ``flat`` is only ever updated in place
            views = self._flat_views = (self.flat, self._views(self.flat))
        return views[1]

    def make_trainable(self) -> None:
        """Give ``flat`` a gradient buffer and expose per-tensor leaves backed by it: the optimizer
        steps ``flat`` as one tensor, the forward pass uses the leaves, and no gradient is copied."""
        self._leaves = []
        for v, g in zip(self._views(self.flat), self.grads()):
            leaf = v.detach().requires_grad_(True)  # shares memory with flat
            leaf.grad = g
            self._leaves.append(leaf)

    def grads(self) -> list[torch.Tensor]:
        """Views ``(B, *shape)`` into ``flat.grad`` (created, zero, on first call): where autograd
        accumulates through :meth:`make_trainable`'s leaves, or a hand-written backward pass writes."""
        views = getattr(self, "_grads", None)
        if views is None:
            if self.flat.grad is None:
                self.flat.grad = torch.zeros_like(self.flat)
            views = self._grads = self._views(self.flat.grad)
        return views

    def rows(self, start: int, stop: int) -> "Stacked":
        """Seeds ``start:stop`` as a :class:`Stacked` sharing this one's memory (``flat`` and, once
        this one has it, ``flat.grad``: call :meth:`grads` on the whole batch first), so work on a
        block of seeds writes straight into the whole batch's buffers. Cached per block."""
        cache = self.__dict__.setdefault("_rows", {})
        out = cache.get((start, stop))
        if out is None:
            out = type(self).__new__(type(self))
            out.shapes, out.slices, out.flat, out._leaves = self.shapes, self.slices, self.flat[start:stop], None
            cache[(start, stop)] = out
        if out.flat.grad is None and self.flat.grad is not None:
            out.flat.grad = self.flat.grad[start:stop]
        return out

    def zero_grad(self) -> None:
        self.flat.grad.zero_()

    def clone(self) -> "Stacked":
        out = type(self).__new__(type(self))
        out.shapes, out.slices, out.flat = self.shapes, self.slices, self.flat.detach().clone()
        out._leaves = None
        return out

    def to(self, device: torch.device) -> "Stacked":
        out = self.clone()
        out.flat = out.flat.to(device)
        return out


def clip_grad_norm_per_seed(params: Stacked, max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` for every seed separately (the norm of the norms of its tensors, as
    there); returns the ``(B,)`` pre-clip norms."""
    g = params.flat.grad
    norms = torch.stack([torch.linalg.vector_norm(g[:, o:o + n], 2.0, dim=1) for o, n in params.slices], dim=1)
    total = torch.linalg.vector_norm(norms, 2.0, dim=1)
    coef = torch.clamp(float(max_norm) / (total + 1e-6), max=1.0)
    g.mul_(coef.unsqueeze(1))
    return total
