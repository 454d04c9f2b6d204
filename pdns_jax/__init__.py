"""pdns_jax: PDNS (DNS + soft BPR) hard negative sampling for implicit CF, in JAX."""

__version__ = "0.1.0"
