"""Negative samplers by name: the registry the trainer builds a sampler from.

Each entry says how to build the sampler from the config and which loss
`config.loss="auto"` means for it. "pdns" is a named preset: the DNS sampler
with soft BPR (Algorithm 1), so `--config.sampler=pdns` and
`--config.sampler=dns --config.loss=soft_bpr` train the same thing. To add a
sampler, write a `base.Sampler` subclass in a module of its own and register
it here (README.md, "How to add a sampler").
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from pdns_jax.samplers import adasir
from pdns_jax.samplers import adversarial
from pdns_jax.samplers import base
from pdns_jax.samplers import gdns
from pdns_jax.samplers import srns
from pdns_jax.samplers.dns import Hardest
from pdns_jax.samplers.mixgcf import MixGCF
from pdns_jax.samplers.uniform import Uniform


@dataclasses.dataclass(frozen=True)
class Entry:
  """A registered sampler.

  Attributes:
    build: (config, split) -> the sampler; `split` is the host-side
      `data.Split` (sizes, training pairs) for static shapes such as a pool size.
    loss: the loss `config.loss="auto"` selects ("bpr" | "soft_bpr").
    about: one line for documentation and errors.
    check: (config) -> None, raises `config.ConfigError` naming the field for
      an impossible value of the sampler's own knobs; run before any compute.
    pretrain: whether runs start with `config.pretrain_epochs` RNS epochs
      (the GAN samplers, PAPER.md 8.4).
  """

  build: Callable[..., base.Sampler]
  loss: str
  about: str
  check: Callable[..., None] = lambda config: None
  pretrain: bool = False


REGISTRY = {
    "rns": Entry(lambda c, s: Uniform(num_items=s.num_items), "bpr",
                 "RNS: one uniform non-interacted item"),
    "dns": Entry(lambda c, s: Hardest(num_items=s.num_items, pool_size=c.pool_size), "bpr",
                 "DNS (Eq. 3): the highest-scoring of H uniform candidates"),
    "pdns": Entry(lambda c, s: Hardest(num_items=s.num_items, pool_size=c.pool_size), "soft_bpr",
                  "PDNS (Algorithm 1): DNS with soft BPR, beta = config.beta"),
    "mix": Entry(lambda c, s: Hardest(num_items=s.num_items, pool_size=c.pool_size,
                                      mix=True), "bpr",
                 "DNS + positive mixing with a fixed alpha = config.alpha (Eq. 4)"),
    "mixgcf": Entry(lambda c, s: MixGCF(num_items=s.num_items, pool_size=c.pool_size), "bpr",
                    "MixGCF: random positive mixing per layer and hop mixing"),
    "adasir_u": Entry(lambda c, s: adasir.build(c, s, popularity=False), "bpr",
                      adasir.ABOUT_U, adasir.check),
    "adasir_p": Entry(lambda c, s: adasir.build(c, s, popularity=True), "bpr",
                      adasir.ABOUT_P, adasir.check),
    "irgan": Entry(adversarial.build_irgan, "bpr", adversarial.IRGAN_ABOUT,
                   adversarial.check_irgan, pretrain=True),
    "advir": Entry(adversarial.build_advir, "bpr", adversarial.ADVIR_ABOUT,
                   adversarial.check_advir, pretrain=True),
    "srns": Entry(srns.build, "bpr", srns.ABOUT, srns.check),
    "gdns": Entry(gdns.build, "bpr", gdns.ABOUT, gdns.check),
}
SAMPLERS = tuple(REGISTRY)


def build(config, split) -> base.Sampler:
  """The sampler `config.sampler` names, for the data of `split` (a `data.Split`)."""
  return REGISTRY[config.sampler].build(config, split)


def loss_name(config) -> str:
  """The loss a run trains with: config.loss, or the sampler's own for "auto"."""
  return REGISTRY[config.sampler].loss if config.loss == "auto" else config.loss
