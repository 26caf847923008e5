"""Test suite; packages mirror the `eql` package layout."""
