"""Tests of eql.syntax: grammar, parser, AST, printer, syntax diagnostics."""
