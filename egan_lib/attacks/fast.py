"""The attacker's fast arithmetic: an inference copy of a network with every BatchNorm folded into the
convolution before it, in channels_last memory, for bf16 autocast on CPUs.

In eval mode BatchNorm is an affine map per channel, y = gamma * (x - mu) / sqrt(var + eps) + beta, so
conv -> BN is one convolution with rescaled weights and a new bias (``fuse_conv_bn_eval``). The function
is the same up to float rounding; the backward pass skips BN's memory-bound passes, and channels_last
lets oneDNN use its fastest kernels; ``benchmarks/attack_step.py`` measures a PGD step through EGAN's
C(G(E(x))) both ways (it is emulated, and slower, on CPUs without native bf16).

Only the attacker uses it: every x_adv is still judged by the defense as deployed.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONV = (nn.Conv2d, nn.ConvTranspose2d)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An eval-mode deep copy of ``module`` in which each BatchNorm2d that directly follows a Conv2d or
    ConvTranspose2d inside an ``nn.Sequential`` is folded into it (the BN becomes ``nn.Identity``), in
    channels_last memory. ``module`` itself is not changed. Raises TypeError for a non-Module."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"fold_batchnorm: expected an nn.Module, got {type(module).__name__}")
    out = copy.deepcopy(module).eval()
    for seq in [m for m in out.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, _CONV) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats \
                    and bn.running_mean is not None:
                seq._modules[a] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                seq._modules[b] = nn.Identity()
    for p in out.parameters():
        p.requires_grad_(False)
    return out.to(memory_format=torch.channels_last)


def attacker_copy(defense):
    """A shallow copy of a Defense whose networks (its ``nn.Module`` attributes) are replaced by
    :func:`fold_batchnorm` copies: the same purifier ``forward`` for the attacker, faster. A defense
    without networks is returned as it is."""
    attrs = {k: v for k, v in vars(defense).items() if isinstance(v, nn.Module)} if hasattr(defense, "__dict__") else {}
    if not attrs or isinstance(defense, nn.Module):
        return defense
    twin = copy.copy(defense)
    for k, v in attrs.items():
        setattr(twin, k, fold_batchnorm(v))
    return twin
