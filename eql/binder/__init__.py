"""The binder: resolves names against the entity schema, types every expression, and produces
the bound IR (`eql.binder.bound`). Collects every problem of the stage before raising EqlError.

May import entities (the schema model), eql.syntax (the AST), eql.types, eql.functions and
eql.diagnostics. No I/O.
"""

from eql.binder.resolve import Names
from eql.binder.statements import bind

__all__ = ["Names", "bind"]
