"""Reading jaxprs in tests: what a traced function asks of the compiler."""


def dot_precisions(closed_jaxpr) -> list:
  """The precision of every dot_general in a jaxpr, its sub-jaxprs included."""
  found = []
  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "dot_general":
        found.append(str(eqn.params["precision"]))
      for value in eqn.params.values():
        for sub in value if isinstance(value, (tuple, list)) else (value,):
          inner = getattr(sub, "jaxpr", sub)
          if hasattr(inner, "eqns"):
            walk(inner)
  walk(closed_jaxpr.jaxpr)
  return found
