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

from pdns_jax.samplers import base
from pdns_jax.samplers.dns import Hardest
from pdns_jax.samplers.mixgcf import MixGCF
from pdns_jax.samplers.uniform import Uniform


@dataclasses.dataclass(frozen=True)
class Entry:
  """A registered sampler.

  Attributes:
    build: (config, num_items) -> the sampler.
    loss: the loss `config.loss="auto"` selects ("bpr" | "soft_bpr").
    about: one line for documentation and errors.
  """

  build: Callable[..., base.Sampler]
  loss: str
  about: str


REGISTRY = {
    "rns": Entry(lambda c, n: Uniform(num_items=n), "bpr",
                 "RNS: one uniform non-interacted item"),
    "dns": Entry(lambda c, n: Hardest(num_items=n, pool_size=c.pool_size), "bpr",
                 "DNS (Eq. 3): the highest-scoring of H uniform candidates"),
    "pdns": Entry(lambda c, n: Hardest(num_items=n, pool_size=c.pool_size), "soft_bpr",
                  "PDNS (Algorithm 1): DNS with soft BPR, beta = config.beta"),
    "mix": Entry(lambda c, n: Hardest(num_items=n, pool_size=c.pool_size, mix=True), "bpr",
                 "DNS + positive mixing with a fixed alpha = config.alpha (Eq. 4)"),
    "mixgcf": Entry(lambda c, n: MixGCF(num_items=n, pool_size=c.pool_size), "bpr",
                    "MixGCF: random positive mixing per layer and hop mixing"),
}
SAMPLERS = tuple(REGISTRY)


def build(config, num_items: int) -> base.Sampler:
  """The sampler `config.sampler` names, for a catalogue of `num_items` items."""
  return REGISTRY[config.sampler].build(config, num_items)


def loss_name(config) -> str:
  """The loss a run trains with: config.loss, or the sampler's own for "auto"."""
  return REGISTRY[config.sampler].loss if config.loss == "auto" else config.loss
