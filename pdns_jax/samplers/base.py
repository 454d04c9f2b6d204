"""The sampler interface: what every negative sampler takes, returns and carries.

A sampler is a frozen (hashable) dataclass holding its static settings; it is
a static argument of the jitted epoch. Per step the trainer calls

  negatives(state, key, batch, embeddings, data, hparams) -> (Negatives, state)

and scores the user against `Negatives.embeddings` with the configured loss
(`config.loss`), weighting the K negatives of an example by
`Negatives.weights`. A sampler that carries state across steps and epochs
(memories, pools, a generator's parameters) creates it in `init`; the state
is a pytree inside the train state, so it is checkpointed, vmapped over
replicas and restored on resume with everything else. `refresh`, if a sampler
has one (`has_refresh`), runs between epochs as its own jitted function.

The smallest sampler, RNS, is `uniform.py`; README.md, "How to add a sampler",
walks through it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax

from pdns_jax import models
from pdns_jax.samplers.pools import SortedSets


@flax.struct.dataclass
class TrainData:
  """Device arrays an epoch reads: training pairs and the per-user sorted sets.

  Over a device mesh the pairs are split by rows, so each device (and each
  process) holds only its share, padded to a multiple of the device count:
  `num_pairs` counts the real ones (None: all), and a sampler that reads every
  pair takes them from `pairs()`.
  """

  users: jax.Array
  items: jax.Array
  exclude: SortedSets  # never drawn as negatives: train (+ revealed FN)
  false_negatives: SortedSets  # FN set, for the hit rate
  num_pairs: int | None = flax.struct.field(pytree_node=False, default=None)

  def pairs(self) -> tuple[jax.Array, jax.Array]:
    """(users, items) of the training pairs, without the mesh's padding rows."""
    n = self.users.shape[0] if self.num_pairs is None else self.num_pairs
    return self.users[:n], self.items[:n]


@flax.struct.dataclass
class Batch:
  """One mini-batch of training pairs; padding rows of the last batch have mask 0."""

  users: jax.Array  # int32 (B,)
  positives: jax.Array  # int32 (B,)
  mask: jax.Array  # float32 (B,)


@flax.struct.dataclass
class Embeddings:
  """The model's embeddings at this step: per layer, and the final (layer mean) ones."""

  user_layers: jax.Array  # (hops, U, F); hops = 1 for MF
  item_layers: jax.Array  # (hops, I, F)
  user: jax.Array  # (U, F) final, what scores use (PAPER.md 3)
  item: jax.Array  # (I, F)

  @classmethod
  def of(cls, user_layers: jax.Array, item_layers: jax.Array) -> "Embeddings":
    return cls(user_layers, item_layers, models.layer_mean(user_layers),
               models.layer_mean(item_layers))


@flax.struct.dataclass
class Negatives:
  """What a sampler hands the loss for a batch of B examples.

  Attributes:
    items: int32 (B, M) the item ids chosen (for the false-negative hit rate
      and exclusion checks); M may differ from K (MixGCF picks one per layer).
    embeddings: (B, K, F) the negatives' final embeddings that the loss scores
      against the user (synthetic, mixed ones for positive mixing).
    layer0: (B, K, F) their layer-0 embeddings, for the L2 term.
    weights: (B, K) loss weight of each negative, rows summing to 1, no gradient.
    extra_loss: a scalar the step adds to the loss, for samplers that train
      the recommender with a term of their own (AdvIR's adversarial BPR);
      0 for all others.
  """

  items: jax.Array
  embeddings: jax.Array
  layer0: jax.Array
  weights: jax.Array
  extra_loss: Any = 0.0


@dataclasses.dataclass(frozen=True)
class Sampler:
  """Base class: a stateless sampler; subclasses override `negatives`.

  Attributes:
    num_items: |I|.
  """

  num_items: int

  # Whether `refresh` does anything (the trainer skips the call otherwise).
  has_refresh = False

  def init(self, key: jax.Array, data: TrainData) -> Any:
    """One replica's initial sampler state (a pytree; () when stateless)."""
    del key, data
    return ()

  def negatives(self, state: Any, key: jax.Array, batch: Batch, embeddings: Embeddings,
                data: TrainData, hparams: dict) -> tuple[Negatives, Any]:
    """Chooses the negatives of one batch; returns them and the new state.

    Args:
      state: this replica's sampler state.
      key: this step's sampling key.
      batch: the batch's users, positives and mask.
      embeddings: the model's embeddings at this step (gradients flow through
        them; stop them where a choice must not be differentiated).
      data: the exclusion sets (items never to return) and training pairs.
      hparams: this replica's float settings: beta, alpha, l2 and the
        samplers' float knobs by dotted name ("srns.alpha"; read with `knob`).
    """
    raise NotImplementedError

  def refresh(self, state: Any, key: jax.Array, embeddings: Embeddings, data: TrainData,
              epoch: jax.Array, hparams: dict | None = None) -> Any:
    """Per-epoch update of the state between epochs (jitted separately).

    `hparams` is this replica's, as `negatives` gets it (None: the static knobs).
    """
    del key, embeddings, data, epoch, hparams
    return state


def knob(hparams: dict | None, name: str, default):
  """A sampler's float knob, e.g. "srns.alpha": this replica's (traced) value.

  The trainer passes every knob of `config.REPLICA_FIELDS` in `hparams`, so a
  `config.replica_sweep` over it gives each replica its own value; a direct
  call without it (tests, tools) gets `default`, the sampler's static field.
  """
  return hparams[name] if hparams and name in hparams else default


def single(items: jax.Array, embeddings: jax.Array, layer0: jax.Array) -> Negatives:
  """Negatives with one negative per example: items (B,), embeddings (B, F)."""
  return Negatives(items=items[:, None], embeddings=embeddings[:, None],
                   layer0=layer0[:, None],
                   weights=jax.numpy.ones((items.shape[0], 1), embeddings.dtype))
