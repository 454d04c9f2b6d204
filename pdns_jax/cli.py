"""The harness of the launch scripts: absl flags, quiet logs, one-line errors.

`run(main)` parses the flags (`--config=file.py[:arg]` and `--config.field=value`
through ml_collections' config_flags, which the scripts define), then calls
`main()`. A mistake a user can make (a bad flag or field, an impossible
value, missing data) ends with one line `error: ...` naming the flag or field
and exit status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import re
import sys
from typing import Callable, Iterator, NoReturn, Sequence

from absl import app
from absl import flags
from absl import logging

from pdns_jax import data as data_lib
from pdns_jax.config import ConfigError

# What a user can get wrong; NonFiniteLossError (a diverged run) is a
# FloatingPointError wherever the trainer defines it.
USER_ERRORS = (ConfigError, data_lib.DataError, FloatingPointError)


def fail(message: object) -> NoReturn:
  """Prints `error: <first and last line of message>` to stderr; exits with 2."""
  lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
  text = lines[0] if len(lines) < 2 else f"{lines[0]} {lines[-1]}"
  print(f"error: {text}", file=sys.stderr)
  sys.exit(2)


@contextlib.contextmanager
def flag_errors() -> Iterator[None]:
  """Turns what absl and ml_collections raise for a bad flag into `fail`.

  Wraps flag parsing, and the definition of a config_flags flag with a
  default config (ml_collections applies `--config.x=y` there already).
  """
  try:
    yield
  except flags.Error as e:
    fail(e)
  except AttributeError as e:  # ml_collections: an override of an unknown field
    fail(_unknown_field(e))
  except OSError as e:  # ml_collections loads a config file when first read
    fail(f"--config: {e}")


def _unknown_field(error: AttributeError) -> str:
  """`--config.bta: no such config field; Did you mean "beta"...?` from argv."""
  # ml_collections wraps a KeyError whose text is "'bta'\nDid you mean ...?",
  # naming the last part of the dotted path only.
  inner = error.args[0] if error.args and isinstance(error.args[0], KeyError) else error
  lines = str(inner.args[0] if inner.args else inner).splitlines() or ["?"]
  key = lines[0].strip("'\"")
  pattern = re.compile(rf"--?config\.([\w.]+\.)?{re.escape(key)}([.=]|$)")
  flag = next((arg.split("=")[0] for arg in sys.argv[1:] if pattern.match(arg)), "--config")
  return f"{flag}: no such config field" + (f"; {lines[-1]}" if len(lines) > 1 else "")


def _parse(argv: Sequence[str], verbosity: int | None,
           config_flag: str | None) -> list[str]:
  # The scripts' default verbosity goes first, so a --verbosity the user gives
  # wins: it is an argument like any other, not a later change of the log level.
  argv = [argv[0]] + ([f"--verbosity={verbosity}"] if verbosity is not None else []) + \
      list(argv[1:])
  with flag_errors():
    rest = flags.FLAGS(argv)
    if config_flag is not None:  # a file that failed to load raises when first read
      flags.FLAGS[config_flag].value.keys()
  if len(rest) > 1:
    fail(f"unexpected arguments {rest[1:]} (flags are written --name=value)")
  return rest


def run(main: Callable[[], None], *, verbosity: int | None = logging.WARNING,
        config_flag: str | None = "config") -> None:
  """`app.run` for a launch script.

  Args:
    main: the script's body, called once the flags are parsed.
    verbosity: the absl log level unless --verbosity is given (WARNING: the
      sweep scripts print their own per-run progress; None: absl's INFO).
    config_flag: the config_flags flag, loaded while parsing so that a missing
      config file is a flag error too; None if there is none.
  """
  def body(_):
    try:
      main()
    except USER_ERRORS as e:
      fail(e)
  app.run(body, flags_parser=lambda argv: _parse(argv, verbosity, config_flag))
