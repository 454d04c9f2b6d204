"""IRGAN and AdvIR (BASELINES.md 4-5): negatives drawn by a generator trained by policy gradient.

IRGAN (Wang et al., SIGIR 2017). The discriminator D is the recommender the
trainer trains; the generator G is a separate MF with an item bias,
f_G(u, j) = g_u . g_j + b_j, whose parameters and Adam state live in this
sampler's state (checkpointed, vmapped over replicas, restored on resume with
the rest). Every step updates both (the fixed-shape choice of alternating D
and G steps):

1. D's negative: j ~ softmax(f_G(u, .) / T_D) over u's non-positives (or over
   `candidates` uniform exact candidates); D's loss is BPR on (u, i, j),
   computed by the trainer's step from the `Negatives` returned here.
2. G's step, inside `negatives`: K items per example from the proposal
   0.8 p_G + 0.2 uniform over u's positives, rewards
   r = (2 sigma(s_D(u, j)) - 1) p_G(j) / proposal(j) (geek-ai/irgan's reward,
   not the paper's ln(1 + e^f)), loss -mean(ln p_G(j) r) + l2, one Adam update.

No gradient crosses between the two: G reads D's embeddings through
stop_gradient only, and D scores its drawn negative with its own embeddings.
G starts from D: `refresh` copies D's final embeddings into G (bias 0, fresh
Adam state) at the start of epoch `pretrain_epochs`, after the trainer's RNS
pre-training (or at epoch 0 from the untrained model when there is none).

AdvIR (Park and Chang, WWW 2019), a reconstruction (BASELINES.md 5): IRGAN's
generator and sampling (over H uniform candidates by default) plus APR's
adversarial training (He et al., SIGIR 2018): delta = eps g / ||g|| per
example row of (e_u, e_i, e_j), g the gradient of the clean BPR loss, and the
extra loss adv_weight * BPR(e + stop_gradient(delta)) handed to the step
through `Negatives.extra_loss`.

Cost: the state holds G's parameters and two Adam moments, 3 (U + I) F + 3 I
floats per replica. A step computes f_G over all items once (B x I x F) and
reads it for D's draw, G's draws and G's gradient (two more B x I x F
products); draws are two-level inverse CDFs (`pools.weighted_draws`: the
same distribution as the one-level CDF used before, but two uniforms per draw,
so a key draws other items than it did then); D's draw over all
non-positives scatters B x max |I_u| positions into a mask.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from pdns_jax.config import ConfigError
from pdns_jax.samplers.base import Sampler, knob, single
from pdns_jax.samplers.pools import (SortedSets, batch_pools, contains, exclusion_mask,
                                     weighted_draws)

# The released code's share of the positives in G's proposal (sample_lambda).
POSITIVE_SHARE = 0.2

IRGAN_ABOUT = (
    "IRGAN: j ~ softmax(f_G / T_D) over the user's non-positives from an MF+bias generator "
    "trained by REINFORCE; D and G both updated every step (alternating per step); "
    "reward (2 sigma(s_D) - 1) p_G / proposal as in geek-ai/irgan, not the paper's "
    "ln(1+e^f); candidates excluded exactly; K draws per example, not per user; "
    "G starts from D after config.pretrain_epochs RNS epochs")
ADVIR_ABOUT = (
    "AdvIR (reconstruction): IRGAN's generator sampling over H uniform candidates "
    "(config.irgan.candidates, or config.pool_size when 0) plus APR perturbations "
    "delta = eps g/||g|| per example row of (e_u, e_i, e_j), loss BPR + adv_weight * "
    "BPR(e + delta); G as IRGAN (alternating per step, released-code reward)")


def draw_from(key: jax.Array, logits: jax.Array, num: int) -> jax.Array:
  """`num` draws per row from softmax(logits) (B, n), -inf never: int32 (B, num)."""
  return weighted_draws(key, jnp.exp(logits - jnp.max(logits, -1, keepdims=True)), num)


def generator_logits(generator: dict, users: jax.Array) -> jax.Array:
  """f_G(u, j) = g_u . g_j + b_j for every item: (B, I)."""
  return generator["user"][users] @ generator["item"].T + generator["bias"]


def softmax_weights(logits: jax.Array) -> jax.Array:
  """exp(logits - row max): softmax(logits) up to each row's sum."""
  return jnp.exp(logits - jnp.max(logits, -1, keepdims=True))


def _regularizer(generator: dict, *, users: jax.Array, items: jax.Array,
                 mask: jax.Array) -> jax.Array:
  norms = (jnp.sum(jnp.square(generator["user"][users]), -1)
           + jnp.mean(jnp.sum(jnp.square(generator["item"][items]), -1)
                      + jnp.square(generator["bias"][items]), -1))
  return 0.5 * jnp.sum(norms * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def generator_loss(generator: dict, *, users: jax.Array, items: jax.Array,
                   rewards: jax.Array, mask: jax.Array, l2) -> jax.Array:
  """IRGAN's G loss: -mean(ln p_G(j) r) + l2 * 0.5 ||batch embeddings||^2.

  p_G is the softmax of f_G(u, .) over all items (the released code's). The
  rewards are constants (no gradient through them), as in geek-ai/irgan where
  they are computed outside the graph. The step applies its gradient as
  `generator_grads` computes it.

  Args:
    generator: {"user": (U, F), "item": (I, F), "bias": (I,)}.
    users: int32 (B,).
    items: int32 (B, K) the drawn items.
    rewards: (B, K).
    mask: (B,) real examples.
    l2: weight of 0.5 (||g_u||^2 + mean_k (||g_j||^2 + b_j^2)), mean over examples.
  """
  log_p = jax.nn.log_softmax(generator_logits(generator, users), axis=-1)
  log_p_drawn = jnp.take_along_axis(log_p, items, axis=1)
  count = jnp.maximum(jnp.sum(mask), 1.0) * items.shape[1]
  policy = -jnp.sum(log_p_drawn * jax.lax.stop_gradient(rewards) * mask[:, None]) / count
  return policy + l2 * _regularizer(generator, users=users, items=items, mask=mask)


def generator_grads(generator: dict, *, users: jax.Array, items: jax.Array,
                    rewards: jax.Array, mask: jax.Array, l2, weights: jax.Array) -> dict:
  """The gradient of `generator_loss`, from the step's p_G instead of a second forward.

  With c_bk = r_bk mask_b / (n K), the policy term's gradient by the logits is
  p_G(u_b, .) sum_k c_bk - sum_k c_bk onehot(j_bk): a dense part, pushed
  through f_G's two products, and a sparse one, added at the drawn items.
  Autodiff would recompute f_G and its softmax over B x I and build the
  one-hot part densely.

  Args:
    generator, users, items, rewards, mask, l2: as `generator_loss`.
    weights: (B, I) `softmax_weights` of f_G(u, .) for these users.
  """
  count = jnp.maximum(jnp.sum(mask), 1.0) * items.shape[1]
  c = jax.lax.stop_gradient(rewards) * mask[:, None] / count
  # The dense part is diag(scale) @ weights: the scale goes onto the small
  # factors, so no other B x I array is built.
  scale = c.sum(1) / weights.sum(1)
  user_rows, item_table = generator["user"][users], generator["item"]
  d_rows = (scale[:, None] * (weights @ item_table)
            - jnp.einsum("bk,bkf->bf", c, item_table[items]))
  # One (F + 1) x B x I product gives the item and the bias gradient.
  dense_t = jnp.concatenate([scale[:, None] * user_rows, scale[:, None]], 1).T @ weights
  grads = {"user": jnp.zeros_like(generator["user"]).at[users].add(d_rows),
           "item": dense_t[:-1].T.at[items].add(-c[..., None] * user_rows[:, None]),
           "bias": dense_t[-1].at[items].add(-c)}
  reg = jax.grad(_regularizer)(generator, users=users, items=items, mask=mask)
  return jax.tree_util.tree_map(lambda g, r: g + l2 * r, grads, reg)


def generator_sample(generator: dict, key: jax.Array, *, users: jax.Array,
                     exclude: SortedSets, user_embeddings: jax.Array,
                     item_embeddings: jax.Array, samples: int,
                     weights: jax.Array | None = None):
  """G's training draws and their rewards (BASELINES.md 4, step 2).

  K items per example from 0.8 p_G + 0.2 uniform over the user's positives
  (the excluded set: training positives plus revealed false negatives), and
  r = (2 sigma(s_D(u, j)) - 1) p_G(j) / proposal(j), D's score by its final
  embeddings without gradient.

  Args:
    generator: G's parameters.
    key: PRNG key.
    users: int32 (B,).
    exclude: the per-user positives.
    user_embeddings, item_embeddings: D's final embeddings (U, F), (I, F).
    samples: K.
    weights: `softmax_weights` of f_G(u, .) (B, I) when the step has them.

  Returns:
    (items int32 (B, K), rewards (B, K)).
  """
  g_key, pick_key, mix_key = jax.random.split(key, 3)
  batch = users.shape[0]
  if weights is None:
    weights = softmax_weights(generator_logits(generator, users))
  from_g = weighted_draws(g_key, weights, samples)
  start, size = exclude.indptr[users], exclude.indptr[users + 1] - exclude.indptr[users]
  offset = jnp.floor(jax.random.uniform(pick_key, (batch, samples)) * size[:, None])
  offset = jnp.minimum(offset.astype(jnp.int32), jnp.maximum(size[:, None] - 1, 0))
  positive = exclude.items[jnp.minimum(start[:, None] + offset, exclude.items.shape[0] - 1)]
  # A user without positives gets the pure p_G proposal.
  share = jnp.where(size > 0, POSITIVE_SHARE, 0.0)[:, None]
  use_positive = jax.random.uniform(mix_key, (batch, samples)) < share
  items = jnp.where(use_positive, positive, from_g)
  p_g = jnp.take_along_axis(weights, items, axis=1) / weights.sum(-1, keepdims=True)
  member = jax.vmap(jax.vmap(contains, (None, None, 0)), (None, 0, 0))(exclude, users, items)
  proposal = (1.0 - share) * p_g + share * member / jnp.maximum(size, 1)[:, None]
  scores = jnp.einsum("bf,bkf->bk", jax.lax.stop_gradient(user_embeddings[users]),
                      jax.lax.stop_gradient(item_embeddings[items]))
  rewards = (2.0 * jax.nn.sigmoid(scores) - 1.0) * p_g / proposal
  return items, jax.lax.stop_gradient(rewards)


def adversarial_perturbation(*, user: jax.Array, positive: jax.Array, negative: jax.Array,
                             mask: jax.Array, eps) -> tuple[jax.Array, ...]:
  """APR's perturbation: eps g / ||g|| per row, g = d BPR / d (e_u, e_i, e_j), no gradient.

  Args:
    user, positive, negative: (B, F) the batch's final embeddings.
    mask: (B,) real examples (padding rows get delta 0).
    eps: the perturbation norm.

  Returns:
    (delta_u, delta_i, delta_j), each (B, F).
  """
  def clean(e_u, e_i, e_j):
    terms = jax.nn.softplus(jnp.sum(e_u * e_j, -1) - jnp.sum(e_u * e_i, -1))
    return jnp.sum(terms * mask) / jnp.maximum(jnp.sum(mask), 1.0)
  inputs = [jax.lax.stop_gradient(e) for e in (user, positive, negative)]
  grads = jax.grad(clean, argnums=(0, 1, 2))(*inputs)
  def scale(g):
    norm = jnp.linalg.norm(g, axis=-1, keepdims=True)
    return jnp.where(norm > 0, eps * g / jnp.where(norm > 0, norm, 1.0), 0.0)
  return tuple(jax.lax.stop_gradient(scale(g)) for g in grads)


@dataclasses.dataclass(frozen=True)
class IRGAN(Sampler):
  """IRGAN's generator as a sampler (module docstring).

  Attributes:
    embed_dim: F of the generator (D's, since G starts as a copy of D).
    temperature: T_D of D's draws.
    samples: K, G's draws per example.
    candidates: 0 = D's draw over all non-positives; else over this many
      uniform exact candidates per example.
    learning_rate: G's Adam rate.
    l2: G's own L2 weight.
    pretrain_epochs: the epoch at whose start G is copied from D.
  """

  embed_dim: int = 64
  temperature: float = 0.2
  samples: int = 5
  candidates: int = 0
  learning_rate: float = 0.001
  l2: float = 0.0001
  pretrain_epochs: int = 0

  has_refresh = True

  @property
  def optimizer(self) -> optax.GradientTransformation:
    return optax.adam(self.learning_rate)

  def _state(self, user: jax.Array, item: jax.Array) -> dict:
    generator = {"user": user, "item": item, "bias": jnp.zeros(item.shape[0], item.dtype)}
    return {"generator": generator, "opt": self.optimizer.init(generator)}

  def init(self, key, data):
    del key
    num_users = data.exclude.indptr.shape[0] - 1
    # Placeholder values: `refresh` overwrites them from D before G is ever used.
    return self._state(jnp.zeros((num_users, self.embed_dim), jnp.float32),
                       jnp.zeros((self.num_items, self.embed_dim), jnp.float32))

  def refresh(self, state, key, embeddings, data, epoch, hparams=None):
    del key, data, hparams
    fresh = self._state(jax.lax.stop_gradient(embeddings.user).astype(jnp.float32),
                        jax.lax.stop_gradient(embeddings.item).astype(jnp.float32))
    start = epoch == self.pretrain_epochs
    return jax.tree_util.tree_map(lambda new, old: jnp.where(start, new, old), fresh, state)

  def discriminator_negative(self, generator: dict, key: jax.Array, users: jax.Array,
                             exclude: SortedSets, *, logits: jax.Array | None = None,
                             temperature=None) -> jax.Array:
    """D's negatives (B,): j ~ softmax(f_G(u, .) / T_D) over non-positives or candidates.

    Args:
      logits: f_G(u, .) for these users (B, I), when the step has them.
      temperature: T_D (default: the static one).
    """
    temperature = self.temperature if temperature is None else temperature
    pool_key, draw_key = jax.random.split(key)
    if self.candidates:
      pool = batch_pools(pool_key, users, exclude, self.num_items, self.candidates)
      user = generator["user"][users]
      logits = (jnp.einsum("bf,bhf->bh", user, generator["item"][pool])
                + generator["bias"][pool]) / temperature
      pick = draw_from(draw_key, logits, 1)
      return jnp.take_along_axis(pool, pick, axis=1)[:, 0]
    if logits is None:
      logits = generator_logits(generator, users)
    logits = jnp.where(exclusion_mask(exclude, users, self.num_items), -jnp.inf, logits)
    return draw_from(draw_key, logits / temperature, 1)[:, 0]

  def update_generator(self, state: dict, key: jax.Array, batch, embeddings, data, *,
                       logits: jax.Array | None = None, hparams: dict | None = None) -> dict:
    """One REINFORCE step of G with its own Adam (BASELINES.md 4, step 2).

    Args:
      logits: f_G(u, .) of the batch's users (B, I), when the step has them.
      hparams: this replica's knobs (irgan.learning_rate, irgan.l2).
    """
    generator = state["generator"]
    if logits is None:
      logits = generator_logits(generator, batch.users)
    weights = softmax_weights(logits)
    items, rewards = generator_sample(
        generator, key, users=batch.users, exclude=data.exclude,
        user_embeddings=embeddings.user, item_embeddings=embeddings.item,
        samples=self.samples, weights=weights)
    grads = generator_grads(generator, users=batch.users, items=items, rewards=rewards,
                            mask=batch.mask, l2=knob(hparams, "irgan.l2", self.l2),
                            weights=weights)
    # Adam's state does not depend on the rate, so a traced per-replica rate is fine.
    optimizer = optax.adam(knob(hparams, "irgan.learning_rate", self.learning_rate))
    updates, opt = optimizer.update(grads, state["opt"], generator)
    return {"generator": optax.apply_updates(generator, updates), "opt": opt}

  def negatives(self, state, key, batch, embeddings, data, hparams):
    d_key, g_key = jax.random.split(key)
    # G is read and updated with no path to D's parameters.
    state = jax.lax.stop_gradient(state)
    # f_G over all items for the batch, once: D's draw, G's draws and G's
    # gradient all read it (B x I x F, the step's largest product).
    logits = generator_logits(state["generator"], batch.users)
    negative = self.discriminator_negative(
        state["generator"], d_key, batch.users, data.exclude, logits=logits,
        temperature=knob(hparams, "irgan.temperature", self.temperature))
    frozen = jax.tree_util.tree_map(jax.lax.stop_gradient, embeddings)
    state = self.update_generator(state, g_key, batch, frozen, data, logits=logits,
                                  hparams=hparams)
    return single(negative, embeddings.item[negative],
                  embeddings.item_layers[0][negative]), state


@dataclasses.dataclass(frozen=True)
class AdvIR(IRGAN):
  """AdvIR (reconstruction): IRGAN's sampling plus APR's adversarial BPR term.

  Attributes:
    eps: the perturbation norm per row.
    adv_weight: lambda_adv, the weight of the perturbed BPR term.
  """

  eps: float = 0.5
  adv_weight: float = 1.0

  def negatives(self, state, key, batch, embeddings, data, hparams):
    negatives, state = super().negatives(state, key, batch, embeddings, data, hparams)
    e_u = embeddings.user[batch.users]
    e_i = embeddings.item[batch.positives]
    e_j = negatives.embeddings[:, 0]
    d_u, d_i, d_j = adversarial_perturbation(user=e_u, positive=e_i, negative=e_j,
                                             mask=batch.mask,
                                             eps=knob(hparams, "advir.eps", self.eps))
    user = e_u + d_u
    terms = jax.nn.softplus(jnp.sum(user * (e_j + d_j), -1) - jnp.sum(user * (e_i + d_i), -1))
    adversarial = jnp.sum(terms * batch.mask) / jnp.maximum(jnp.sum(batch.mask), 1.0)
    weight = knob(hparams, "advir.adv_weight", self.adv_weight)
    return negatives.replace(extra_loss=weight * adversarial), state


def _need(config, block: str, field: str, ok: bool, why: str) -> None:
  if not ok:
    raise ConfigError(f"config.{block}.{field}: {why} (got {config[block][field]!r})")


def check_irgan(config) -> None:
  """Rejects impossible IRGAN knobs (config.irgan)."""
  c = config.irgan
  _need(config, "irgan", "temperature", c.temperature > 0, "must be > 0")
  _need(config, "irgan", "samples", c.samples >= 1, "must be >= 1")
  _need(config, "irgan", "candidates", c.candidates >= 0,
        "must be >= 0 (0 = all non-positives)")
  _need(config, "irgan", "learning_rate", c.learning_rate > 0, "must be > 0")
  _need(config, "irgan", "l2", c.l2 >= 0, "must be >= 0")


def check_advir(config) -> None:
  """Rejects impossible AdvIR knobs (config.irgan and config.advir)."""
  check_irgan(config)
  _need(config, "advir", "eps", config.advir.eps > 0, "must be > 0")
  _need(config, "advir", "adv_weight", config.advir.adv_weight >= 0, "must be >= 0")


def _irgan_settings(config) -> dict:
  c = config.irgan
  return dict(embed_dim=int(config.embed_dim), temperature=float(c.temperature),
              samples=int(c.samples), candidates=int(c.candidates),
              learning_rate=float(c.learning_rate), l2=float(c.l2),
              pretrain_epochs=int(config.pretrain_epochs))


def build_irgan(config, split) -> IRGAN:
  return IRGAN(num_items=split.num_items, **_irgan_settings(config))


def build_advir(config, split) -> AdvIR:
  settings = _irgan_settings(config)
  settings["candidates"] = settings["candidates"] or int(config.pool_size)
  return AdvIR(num_items=split.num_items, eps=float(config.advir.eps),
               adv_weight=float(config.advir.adv_weight), **settings)
